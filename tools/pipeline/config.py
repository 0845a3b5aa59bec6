"""The pipeline's YAML file, read into typed settings and checked once, before any stage runs.

Layout (see examples/data/pipeline.yaml)::

    output: runs/data            # OUTPUT/<stage>/ per stage; OUTPUT/tokenize/<source>/ per source
    workers: 2                   # default: all cores
    split_bytes: 1073741824      # JSON Lines files larger than this become several shards (0: never)
    text_field: text             # default text
    id_field: id                 # default id
    sources:                     # one tokenized dataset (and blend weight) per source
      - {name: web, inputs: [data/web/*.jsonl.zst], weight: 0.7}
    stages:                      # a stage left out is not run; tokenize is required
      clean: {languages: [en], quality: {min_words: 50}}
      exact_dedup: {fold_punctuation: false, keep: first-seen}
      fuzzy_dedup: {threshold: 0.8, num_perm: 128}
      decontaminate: {benchmarks: [humaneval], mode: remove-spans}
      filter:                    # blocks only (after decontamination)
        blocks: [{block: score_threshold, score: quality, min: 0.5}]
      tokenize: {dataset_name: text_document}

Each stage's options are the fields of that stage's own settings (the CLI flags of
``qwen-data <stage>``, with underscores). ``clean`` and ``filter`` take instead a list of blocks
(``tools.blocks``), each ``{block: NAME or module:Class, its settings...}``, run in that order.
Relative paths are relative to the current directory, as on the command line.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation.dataclass_yaml import FieldError, build_dataclass, read_yaml
from foundation.records.split import DEFAULT_SPLIT_BYTES
from tools.blocks.language import Language
from tools.blocks.registry import block_class
from tools.blocks.stage import BlockStage
from tools.blocks.text import Text
from tools.clean.stage import CleanSettings, clean_stage, quality_options
from tools.decontaminate.benchmarks import BenchmarkError, BenchmarkSpec
from tools.decontaminate.removal import RemovalRules
from tools.decontaminate.stage import DecontaminationConfig
from tools.dedup.exact import ExactDedup, Normalization
from tools.dedup.keep import KeepPolicy
from tools.dedup.minhash import MinHashDedup, MinHashSettings
from tools.stage.errors import InputError
from tools.stage.settings import SettingError
from tools.stage.stages import PipelineStage
from tools.tokenize.cli import TokenizeStage
from tools.tokenize.shard import TokenizerSpec, dataset_name_problem

FILTER_STAGES = ("clean", "exact_dedup", "fuzzy_dedup", "decontaminate", "filter")


class PipelineConfigError(InputError):
    """A problem with the YAML file; the message names the file and the key."""


@dataclass(frozen=True)
class Source:
    name: str
    inputs: tuple[str, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class PipelineConfig:
    path: str
    output: Path
    sources: tuple[Source, ...]
    stages: dict[str, PipelineStage]  # stage name -> the stage, in run order
    tokenize: TokenizeStage  # run once per source
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    text_field: str = "text"
    id_field: str = "id"
    raw: dict = field(default_factory=dict)  # the YAML as read, recorded to refuse a changed rerun
    progress: bool = True
    split_bytes: int = DEFAULT_SPLIT_BYTES


def _build(cls, options: Any, where: str, **fixed):
    """``cls`` from the YAML mapping ``options`` at ``where``, refused with a message naming the key."""
    try:
        return build_dataclass(cls, options, where, fixed)
    except FieldError as error:
        raise PipelineConfigError(str(error)) from None
    except SettingError as error:  # the same ranges the CLI flags are checked against
        raise PipelineConfigError(f"{where}.{error.name}: must be {error.requirement}, got {error.value!r}") from None
    except (InputError, ValueError, TypeError) as error:  # a block's own check of its settings
        raise PipelineConfigError(f"{where}: {error}") from None


def _blocks(entries: Any, where: str) -> tuple:
    """``[{block: NAME or module:Class, setting: value, ...}, ...]`` -> the blocks, in order."""
    if not isinstance(entries, list) or not entries:
        raise PipelineConfigError(f"{where}: expected a non-empty list of blocks, e.g. [{{block: gopher_quality}}]")
    blocks = []
    for number, entry in enumerate(entries):
        here = f"{where}[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("block"), str):
            raise PipelineConfigError(f"{here}: expected {{block: NAME or module:Class, its settings...}}, got {entry!r}")
        settings = {key: value for key, value in entry.items() if key != "block"}
        try:
            cls = block_class(entry["block"])
        except InputError as error:
            raise PipelineConfigError(f"{here}.block: {error}") from None
        blocks.append(_build(cls, settings, here))
    return tuple(blocks)


def _clean(options: Any, where: str) -> BlockStage:
    """Either a list of blocks, or the options of ``qwen-data clean``."""
    options = dict(options or {})
    if "blocks" in options:
        if len(options) > 1:
            raise PipelineConfigError(f"{where}: blocks: list every block's settings there, not beside it "
                                      f"(found {', '.join(sorted(set(options) - {'blocks'}))})")
        return BlockStage("clean", _blocks(options["blocks"], f"{where}.blocks"))
    known = {"quality", "quality_filters", *(f.name for cls in (Text, Language) for f in dataclasses.fields(cls))}
    for key in options:
        if key not in known:
            raise PipelineConfigError(f"{where}.{key}: unknown option (known: blocks, {', '.join(sorted(known))})")
    quality = options.pop("quality", None) or {}
    filters = options.pop("quality_filters", True)
    if not isinstance(quality, dict) or not isinstance(filters, bool):
        raise PipelineConfigError(f"{where}: quality must be a mapping of rule thresholds, quality_filters true/false")
    language_keys = {item.name for item in dataclasses.fields(Language)}
    language = _build(Language, {key: options.pop(key) for key in list(options) if key in language_keys}, where)
    text = _build(Text, options, where)
    try:
        owned = quality_options(quality)
    except KeyError as error:
        raise PipelineConfigError(f"{where}.quality.{error.args[0]}: unknown rule (see qwen-data clean --help)") from None
    rules = tuple(_build(block, settings, f"{where}.quality", language_field=language.language_field)
                  for block, settings in owned) if filters else ()
    return clean_stage(CleanSettings(text, language, rules))


def _filter(options: Any, where: str) -> BlockStage:
    options = dict(options or {})
    unknown = set(options) - {"blocks"}
    if unknown:
        raise PipelineConfigError(f"{where}.{sorted(unknown)[0]}: unknown option (known: blocks)")
    return BlockStage("filter", _blocks(options.get("blocks"), f"{where}.blocks"))


def _keep(options: dict, where: str) -> KeepPolicy:
    try:
        return KeepPolicy(options.pop("keep", "first-seen"), tuple(options.pop("source_priority", ())))
    except ValueError as error:
        raise PipelineConfigError(f"{where}.keep: {error}") from None


def _exact_dedup(options: Any, where: str) -> ExactDedup:
    options = dict(options or {})
    keep = _keep(options, where)
    return ExactDedup(_build(Normalization, options, where), keep)


def _fuzzy_dedup(options: Any, where: str) -> MinHashDedup:
    options = dict(options or {})
    keep = _keep(options, where)
    return MinHashDedup(_build(MinHashSettings, options, where), keep)


def _decontaminate(options: Any, where: str) -> DecontaminationConfig:
    options = dict(options or {})
    benchmarks = options.pop("benchmarks", None)
    if not benchmarks or not isinstance(benchmarks, list):
        raise PipelineConfigError(f"{where}.benchmarks: a list of benchmarks is required, e.g. [humaneval]")
    for number, spec in enumerate(benchmarks):
        try:
            BenchmarkSpec.parse(str(spec))
        except BenchmarkError as error:
            raise PipelineConfigError(f"{where}.benchmarks[{number}]: {error}") from None
    general = {key: options.pop(key) for key in ("n", "max_ngram_documents") if key in options}
    return _build(DecontaminationConfig, general, where, benchmarks=tuple(str(b) for b in benchmarks),
                  rules=_build(RemovalRules, options, where))


STAGE_BUILDERS = {"clean": _clean, "exact_dedup": _exact_dedup, "fuzzy_dedup": _fuzzy_dedup,
                  "decontaminate": _decontaminate, "filter": _filter}


def _sources(raw: Any, where: str) -> tuple[Source, ...]:
    if not isinstance(raw, list) or not raw:
        raise PipelineConfigError(f"{where}: a non-empty list of sources is required")
    sources = []
    for number, entry in enumerate(raw):
        here = f"{where}[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("inputs"), list) or not entry["inputs"]:
            raise PipelineConfigError(f"{here}: needs name and a non-empty list of inputs")
        source = _build(Source, {**entry, "inputs": [str(i) for i in entry["inputs"]]}, here)
        if not source.name or "/" in source.name or source.weight <= 0:
            raise PipelineConfigError(f"{here}: name must be a plain non-empty name and weight > 0")
        sources.append(source)
    if len({s.name for s in sources}) != len(sources):
        raise PipelineConfigError(f"{where}: source names must be unique")
    return tuple(sources)


def load_pipeline_config(path: str | Path, output: str | None = None, progress: bool = True) -> PipelineConfig:
    try:
        raw = read_yaml(path) or {}
    except FieldError as error:
        raise PipelineConfigError(str(error)) from None
    if not isinstance(raw, dict):
        raise PipelineConfigError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - {"output", "workers", "split_bytes", "text_field", "id_field", "sources", "stages"}
    if unknown:
        raise PipelineConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    stages_raw = raw.get("stages") or {}
    if not isinstance(stages_raw, dict) or "tokenize" not in stages_raw:
        raise PipelineConfigError(f"{path}: stages: must be a mapping that includes tokenize")
    unknown = set(stages_raw) - set(FILTER_STAGES) - {"tokenize"}
    if unknown:
        raise PipelineConfigError(f"{path}: stages.{sorted(unknown)[0]}: unknown stage "
                                  f"(known: {', '.join(FILTER_STAGES)}, tokenize)")
    stages = {name: STAGE_BUILDERS[name](stages_raw[name], f"{path}: stages.{name}")
              for name in FILTER_STAGES if name in stages_raw}
    tokenize_options = dict(stages_raw["tokenize"] or {})
    dataset_name = tokenize_options.pop("dataset_name", "text_document")
    problem = dataset_name_problem(dataset_name)
    if problem:
        raise PipelineConfigError(f"{path}: stages.tokenize.dataset_name: {problem}")
    tokenize = TokenizeStage(_build(TokenizerSpec, tokenize_options, f"{path}: stages.tokenize"), dataset_name)
    destination = output or raw.get("output")
    if not destination:
        raise PipelineConfigError(f"{path}: output: required (or pass --output)")
    workers = raw.get("workers", os.cpu_count() or 1)
    if not isinstance(workers, int) or workers < 1:
        raise PipelineConfigError(f"{path}: workers: must be an integer >= 1")
    split_bytes = raw.get("split_bytes", DEFAULT_SPLIT_BYTES)
    if not isinstance(split_bytes, int) or isinstance(split_bytes, bool) or split_bytes < 0:
        raise PipelineConfigError(f"{path}: split_bytes: must be an integer >= 0 (0: never split)")
    fields = {"text_field": raw.get("text_field", "text"), "id_field": raw.get("id_field", "id")}
    for key, value in fields.items():
        if not isinstance(value, str) or not value:
            raise PipelineConfigError(f"{path}: {key}: must be a field name, got {value!r}")
    return PipelineConfig(str(path), Path(destination), _sources(raw.get("sources"), f"{path}: sources"), stages,
                          tokenize, workers, fields["text_field"], fields["id_field"], raw, progress, split_bytes)
