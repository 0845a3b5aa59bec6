"""``qwen-data clean``: HTML extraction, Unicode normalization, language id, quality rules."""

from __future__ import annotations

import argparse

from tools.blocks.language import Language
from tools.blocks.text import Text
from tools.clean.stage import CleanSettings, clean_stage, quality_fields, quality_options
from tools.clean.text import HTML_MODES, UNICODE_FORMS
from tools.executor.options import run_job
from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config, stage_executor
from tools.stage.settings import SettingError
from tools.stage.stages import document_stage_job


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    text, language = Text(), Language()
    parser.add_argument("--html", choices=HTML_MODES, default=text.html,
                        help="extract the main text from HTML with resiliparse: auto (when the text looks like "
                             "HTML), always, never (default auto)")
    parser.add_argument("--unicode-form", choices=UNICODE_FORMS, default=text.unicode_form,
                        help="Unicode normalization form (default NFC)")
    parser.add_argument("--languages", nargs="+", default=[], metavar="CODE",
                        help="keep only these languages (ISO 639-1, e.g. en zh); default: all")
    parser.add_argument("--min-language-score", type=float, default=language.min_language_score,
                        help="remove documents whose py3langid probability is lower (default 0)")
    parser.add_argument("--language-field", default=language.language_field,
                        help="field that receives the detected language in kept documents (default language)")
    parser.add_argument("--no-quality-filters", action="store_true", help="skip every quality rule")
    rules = parser.add_argument_group(
        "quality rules", "the blocks gopher_quality, c4, fineweb, gopher_repetition, in this order; the first rule "
                         "that fails labels the removal with its name, the measured value and the limit")
    for item in quality_fields():
        if isinstance(item.default, bool):
            rules.add_argument(_flag("no_" + item.name), dest=item.name, action="store_false",
                               help=f"do not apply: {item.metadata['help']}")
        else:
            rules.add_argument(_flag(item.name), type=type(item.default), default=item.default,
                               help=f"{item.metadata['help']} (default {item.default})")


def _settings(args: argparse.Namespace) -> CleanSettings:
    try:
        thresholds = {item.name: getattr(args, item.name) for item in quality_fields()}
        quality = () if args.no_quality_filters else tuple(
            block(**options, language_field=args.language_field) for block, options in quality_options(thresholds))
        return CleanSettings(Text(args.html, args.unicode_form),
                             Language(tuple(args.languages), args.min_language_score, args.language_field), quality)
    except SettingError as error:
        raise error.for_flag() from None


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data clean", lambda: run_job(
        document_stage_job(clean_stage(_settings(args)), stage_config(args)), stage_executor(args)))
