"""``qwen-train``: pretrain a Qwen model from a YAML config plus ``key.sub=value`` overrides.

Examples:
  qwen-train --config examples/configs/qwen-tiny.yaml
  qwen-train --config examples/configs/qwen-tiny.yaml training.train_steps=20 checkpoint.dir=runs/ckpt
  torchrun --nproc-per-node 2 -m pretrain.cli.train --config ... parallel.tp=2
"""

from __future__ import annotations

import argparse
import sys

from pretrain.config import ConfigError, load_config
from pretrain.data.indexed_check import DatasetFileError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qwen-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file mirroring pretrain.config.RunConfig")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="overrides applied after the file, e.g. training.train_steps=50")
    parser.add_argument("--check", action="store_true", help="validate the config and data, then exit")
    return parser.parse_args(argv)


def _fail(message: str) -> int:
    for line in message.splitlines():
        print(f"qwen-train: error: {line}", file=sys.stderr)
    return 2


def run(argv=None) -> int:
    args = parse_args(argv)
    from pretrain.parallel.distributed import world_size_from_env
    from pretrain.validation import validate

    try:
        config = load_config(args.config, args.overrides)
        validate(config, world_size_from_env())
    except ConfigError as error:
        return _fail(str(error))
    if args.check:
        print("qwen-train: config and data are valid")
        return 0
    from pretrain.training.loop import run_training

    try:
        result = run_training(config)
    except DatasetFileError as error:
        return _fail(str(error))
    if result.stopped_by:
        print(f"qwen-train: stopped by {result.stopped_by} at step {result.final_step}; "
              f"checkpoint {result.checkpoint}", file=sys.stderr)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
