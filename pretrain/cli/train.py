"""``qwen-train``: pretrain a Qwen model from a YAML config plus ``key.sub=value`` overrides.

Examples:
  qwen-train --config examples/configs/qwen-tiny.yaml
  qwen-train --config examples/configs/qwen-tiny.yaml training.train_steps=20 checkpoint.dir=runs/ckpt
  torchrun --nproc-per-node 2 -m pretrain.cli.train --config ... parallel.tp=2
  qwen-train --check --world-size 64 --gpu-memory 80GiB --config examples/configs/qwen-14b.yaml
"""

from __future__ import annotations

import argparse
import sys

from foundation.dispatch import positive_int
from foundation.indexed_check import DatasetFileError
from pretrain.config import ConfigError, load_config
from pretrain.host_pages import prefer_huge_pages


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qwen-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file mirroring pretrain.config.RunConfig")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="overrides applied after the file, e.g. training.train_steps=50")
    parser.add_argument("--check", action="store_true",
                        help="validate the config and data, print the per-GPU memory estimate, then exit")
    parser.add_argument("--world-size", type=positive_int, metavar="N",
                        help="with --check: plan for N GPUs (a cluster this is not running on); "
                             "data and checkpoint files are then not checked")
    parser.add_argument("--gpu-memory", metavar="SIZE",
                        help="with --check: memory per GPU, e.g. 80GiB (default: this GPU's, else 80GiB)")
    args = parser.parse_args(argv)
    if (args.world_size or args.gpu_memory) and not args.check:
        parser.error("--world-size and --gpu-memory go with --check")
    return args


def _fail(message: str) -> int:
    for line in message.splitlines():
        print(f"qwen-train: error: {line}", file=sys.stderr)
    return 2


def _check_memory(config, world_size: int, gpu_memory: str | None, planned: bool) -> int:
    import torch

    from pretrain.memory_estimate import GIB, USABLE_FRACTION, estimate, parse_gpu_memory

    try:
        if gpu_memory:
            capacity = parse_gpu_memory(gpu_memory)
        else:
            capacity = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 80 * GIB
    except ValueError as error:
        return _fail(str(error))
    parallel = config.parallel
    dp = world_size // (parallel.tp * parallel.pp)
    result = estimate(config, world_size)
    print(f"qwen-train: layout tp {parallel.tp} x pp {parallel.pp} x dp {dp} = {world_size} GPUs, "
          f"ZeRO-{parallel.zero_stage}, {config.training.precision}, recompute {parallel.recompute}, "
          f"micro-batch {config.training.micro_batch_size} x seq {config.model.seq_length}")
    print(f"qwen-train: memory estimate {result.describe()}; "
          f"{USABLE_FRACTION:.0%} of {capacity / GIB:.0f} GiB is {USABLE_FRACTION * capacity / GIB:.1f} GiB")
    if not result.fits(capacity):
        return _fail(f"the estimate {result.total / GIB:.1f} GiB per GPU is over {USABLE_FRACTION:.0%} of "
                     f"{capacity / GIB:.0f} GiB: raise parallel.tp/pp or zero_stage, turn on parallel.recompute, "
                     "or lower training.micro_batch_size")
    checked = "config valid (data and checkpoint files not checked: planned for another cluster)" if planned         else "config and data are valid"
    print(f"qwen-train: {checked}; the layout fits")
    return 0


def run(argv=None) -> int:
    prefer_huge_pages()  # before anything allocates a tensor: torch's allocator reads it once
    args = parse_args(argv)
    from pretrain.parallel.distributed import world_size_from_env
    from pretrain.validation import validate

    world_size = args.world_size or world_size_from_env()
    try:
        config = load_config(args.config, args.overrides)
        validate(config, world_size, check_files=args.world_size is None)
    except ConfigError as error:
        return _fail(str(error))
    if args.check:
        return _check_memory(config, world_size, args.gpu_memory, planned=args.world_size is not None)
    from pretrain.checkpoint.sharded_state import SavedTensorMismatch
    from pretrain.checkpoint.storage import CheckpointDamaged
    from pretrain.training.loop import run_training
    from pretrain.training.step_metrics import TrainingDiverged

    try:
        result = run_training(config)
    except (DatasetFileError, CheckpointDamaged, SavedTensorMismatch, TrainingDiverged) as error:
        return _fail(str(error))
    if result.stopped_by:
        print(f"qwen-train: stopped by {result.stopped_by} at step {result.final_step}; "
              f"checkpoint {result.checkpoint}", file=sys.stderr)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
