"""``qwen-convert``: Hugging Face checkpoints to and from this project's checkpoints.
``to-hf`` writes a Qwen2ForCausalLM directory; ``from-hf`` makes a step-0 checkpoint from a Qwen2
or Qwen (v1) directory, to start training from with checkpoint.init_weights. See docs/convert.md.
"""

from __future__ import annotations

import sys

from foundation.dispatch import run_subcommand
from pretrain.convert import ConversionError

COMMANDS = {
    "to-hf": ("pretrain.convert.to_hf", "checkpoint -> Hugging Face Qwen2ForCausalLM directory (safetensors)"),
    "from-hf": ("pretrain.convert.from_hf", "Hugging Face Qwen2 or Qwen (v1) directory -> step-0 checkpoint"),
}


def run(argv=None) -> int:
    try:
        return run_subcommand("qwen-convert", __doc__, COMMANDS, argv)
    except ConversionError as error:
        print(f"qwen-convert: error: {error}", file=sys.stderr)
        return 2


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
