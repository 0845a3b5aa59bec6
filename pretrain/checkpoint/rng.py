"""Random-number streams of one rank (Python, NumPy, torch, megatron-core's tracker, CUDA).

Saved per rank (``rng/rank_N.pt``) and restored only under the layout that wrote them; another
layout has other ranks, and its streams restart from the seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

RNG_DIR = "rng"


def rng_file(checkpoint: Path, rank: int) -> Path:
    return checkpoint / RNG_DIR / f"rank_{rank}.pt"


def save_rng_state(checkpoint: Path, rank: int) -> None:
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "tracker": get_cuda_rng_tracker().get_states()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    rng_file(checkpoint, rank).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, rng_file(checkpoint, rank))


def restore_rng_state(checkpoint: Path, rank: int) -> None:
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    state = torch.load(rng_file(checkpoint, rank), weights_only=False)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    get_cuda_rng_tracker().set_states(state["tracker"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
