"""``model.kernels``: which implementation the Qwen layer spec uses, said once at start-up.

- ``torch``: megatron-core's and PyTorch's own modules.
- ``fused``: the fused kernels; compiles them on first use, errors if they cannot serve the device.
- ``auto``: fused when they are already built (installed ahead of time, or compiled earlier with
  ``python -m qwen_kernels.build``) and built for the device, else torch. ``auto`` never compiles, so
  a first run never waits for a compiler.
"""

from __future__ import annotations

import os
import sys

import torch

from qwen_kernels import build

MODES = ("auto", "fused", "torch")
_announced: set[tuple[str, str]] = set()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _serves(device: torch.device) -> bool:
    return device.type == "cpu" or (device.type == "cuda" and build.load().built_with_cuda())


def _announce(message: str, key: tuple[str, str]) -> None:
    # One line per process and choice; only rank 0 speaks under torchrun/SLURM.
    if key in _announced or os.environ.get("RANK", "0") != "0":
        return
    _announced.add(key)
    print(message, file=sys.stderr, flush=True)


def use_fused_kernels(mode: str, device: torch.device | None = None) -> bool:
    """Whether the layer spec should take the fused modules for ``mode`` on ``device``."""
    if mode not in MODES:
        raise ValueError(f"model.kernels must be one of {', '.join(MODES)}, got {mode!r}")
    device = device or default_device()
    if mode == "torch":
        _announce("kernels: torch (model.kernels=torch)", (mode, device.type))
        return False
    if mode == "fused":
        if not _serves(device):
            raise build.KernelBuildError(
                f"model.kernels=fused, but the kernels were built without {device.type} support: "
                "rebuild them with a CUDA toolkit present, or use model.kernels=auto")
        _announce(f"kernels: fused C++/CUDA kernels on {device.type} (model.kernels=fused)", (mode, device.type))
        return True
    fused = build.is_built() and _serves(device)
    reason = ("built for this device" if fused
              else "not built for this device yet; `python -m qwen_kernels.build` compiles them")
    _announce(f"kernels: {'fused' if fused else 'torch'} on {device.type} (model.kernels=auto: fused kernels {reason})",
              (mode, device.type))
    return fused
