"""``qwen-data clean``: HTML extraction, Unicode normalization, language id, quality rules."""

from __future__ import annotations

import argparse
import dataclasses

from tools.clean.quality import QualityThresholds
from tools.clean.stage import CleanSettings, CleanStage
from tools.clean.text import HTML_MODES, UNICODE_FORMS
from tools.executor.options import run_job
from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config, stage_executor
from tools.stage.stages import document_stage_job
from tools.stage.settings import SettingError


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    defaults = CleanSettings()
    parser.add_argument("--html", choices=HTML_MODES, default=defaults.html,
                        help="extract the main text from HTML with resiliparse: auto (when the text looks like "
                             "HTML), always, never (default auto)")
    parser.add_argument("--unicode-form", choices=UNICODE_FORMS, default=defaults.unicode_form,
                        help="Unicode normalization form (default NFC)")
    parser.add_argument("--languages", nargs="+", default=[], metavar="CODE",
                        help="keep only these languages (ISO 639-1, e.g. en zh); default: all")
    parser.add_argument("--min-language-score", type=float, default=defaults.min_language_score,
                        help="remove documents whose py3langid probability is lower (default 0)")
    parser.add_argument("--language-field", default=defaults.language_field,
                        help="field that receives the detected language in kept documents (default language)")
    parser.add_argument("--no-quality-filters", action="store_true", help="skip every quality rule")
    rules = parser.add_argument_group("quality rules (each removal is labelled with the rule's name)")
    for item in dataclasses.fields(QualityThresholds):
        if isinstance(item.default, bool):
            rules.add_argument(_flag("no_" + item.name), dest=item.name, action="store_false",
                               help=f"do not apply: {item.metadata['help']}")
        else:
            rules.add_argument(_flag(item.name), type=type(item.default), default=item.default,
                               help=f"{item.metadata['help']} (default {item.default})")


def _settings(args: argparse.Namespace) -> CleanSettings:
    try:
        quality = QualityThresholds(**{f.name: getattr(args, f.name) for f in dataclasses.fields(QualityThresholds)})
        return CleanSettings(html=args.html, unicode_form=args.unicode_form, languages=tuple(args.languages),
                             min_language_score=args.min_language_score, language_field=args.language_field,
                             quality=quality, quality_filters=not args.no_quality_filters)
    except SettingError as error:
        raise error.for_flag() from None


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data clean", lambda: run_job(
        document_stage_job(CleanStage(_settings(args)), stage_config(args)), stage_executor(args)))
