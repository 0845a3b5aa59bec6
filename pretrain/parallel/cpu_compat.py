"""The one place where megatron-core and DeepSpeed are adapted to run on a CPU (gloo).

megatron-core 0.16 assumes CUDA in three places on our path (REFERENCE.md §3):
1. ``torch.cuda.current_device()`` picks devices for buffers (rotary inverse frequencies, ...), and
   the pipeline's batched p2p exchange ends in ``torch.cuda.synchronize()``;
2. its RNG tracker (``tensor_parallel.random``) saves and swaps CUDA generator states;
3. ``pipeline_parallel/schedules.py`` allocates tensors with ``device="cuda"`` literals.
DeepSpeed picks its accelerator from ``DS_ACCELERATOR`` when it is first imported, and its CPU
backend compiles a C++ op when the process group starts (see :func:`without_deepspeed_shm_allreduce`).

:func:`enable_cpu_execution` handles 1, 2 (megatron's own ``model_parallel_cuda_manual_seed`` then
seeds CPU generator states) and DeepSpeed's accelerator; :func:`cuda_literals_on_cpu` handles 3 and
is entered only around a pipeline schedule, so ordinary ops do not pay for a Python-level dispatch.
Everything here does nothing when CUDA is available.
"""

from __future__ import annotations

import contextlib
import logging
import os

import torch
from torch.overrides import TorchFunctionMode

_enabled = False


def cuda_available() -> bool:
    return torch.cuda.is_available()


def enable_cpu_execution() -> bool:
    """Patch the CUDA assumptions once; returns True when running on CPU."""
    global _enabled
    if cuda_available():
        return False
    if _enabled:
        return True
    # Must precede the first ``import deepspeed`` anywhere in the process.
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    torch.cuda.current_device = lambda: torch.device("cpu")
    # gloo's send/recv have completed when their requests are waited on: nothing left to sync.
    torch.cuda.synchronize = lambda *args, **kwargs: None

    from megatron.core.tensor_parallel import random as megatron_random

    # The tracker forks named generator states for dropout in tensor-parallel regions; on CPU the
    # default generator plays the role of the current CUDA generator.
    megatron_random._get_cuda_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    megatron_random._set_cuda_rng_state = lambda state, *args, **kwargs: torch.set_rng_state(state)
    megatron_random.CudaRNGStatesTracker.add = _add_cpu_rng_state
    # Forking *is* a change of the CPU generator here, so megatron's warning about it is noise.
    logging.getLogger(megatron_random.__name__).setLevel(logging.ERROR)
    _enabled = True
    return True


def without_deepspeed_shm_allreduce() -> None:
    """Keep DeepSpeed's CPU backend from compiling its shared-memory allreduce op.

    ``deepspeed.init_distributed`` on the CPU accelerator builds that op just in time, in every
    process, whether or not it is used: minutes of compiling on a fresh machine, and a C++ compiler
    and a writable ``~/.cache/torch_extensions`` in every container (a read-only image without a
    compiler fails there). Only DeepSpeed's inference all-reduce (its AutoTP) uses it; training's
    collectives go through the gloo process group. Marked not buildable, the op is never compiled.
    Call before ``deepspeed.init_distributed``."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().get_op_builder("ShareMemCommBuilder")
    if builder is not None:
        # DeepSpeed reads this dict (probed once per process) before building an op.
        deepspeed.ops.__compatible_ops__[builder.NAME] = False


def _add_cpu_rng_state(tracker, name: str, seed: int) -> None:
    if seed in tracker.seeds_:
        raise Exception(f"seed {seed} already exists")
    if name in tracker.states_:
        raise Exception(f"rng state {name} already exists")
    tracker.seeds_.add(seed)
    original = torch.get_rng_state()
    torch.manual_seed(seed)
    tracker.states_[name] = torch.get_rng_state()
    torch.set_rng_state(original)


class _CudaLiteralsToCpu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "cuda":
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def cuda_literals_on_cpu():
    """Context that maps ``device="cuda"`` arguments to the CPU (a no-op with CUDA)."""
    if cuda_available():
        return contextlib.nullcontext()
    return _CudaLiteralsToCpu()
