"""Hugging Face checkpoint conversion (``qwen-convert``), both ways.

``to_hf`` writes a checkpoint's layout-free copy (``full/``) as a ``Qwen2ForCausalLM`` directory;
``from_hf`` reads a Qwen2 or Qwen (v1) directory into a step-0 checkpoint that ``to_hf`` and
``checkpoint.init_weights`` accept. ``names`` holds the one name/layout mapping both use, ``hf``
the reading and writing of Hugging Face files, ``staging`` the atomic output directory.
"""

from __future__ import annotations

import sys

PROGRESS_FROM_BYTES = 2**30  # smaller models convert in moments


class ConversionError(ValueError):
    """Input a conversion cannot use; the message names the file, tensor or field."""


def progress(description: str, tensors: int, nbytes: int):
    """A tqdm bar over tensors on stderr, shown on a terminal for models of a GiB or more."""
    from tqdm import tqdm

    return tqdm(total=tensors, desc=f"qwen-convert {description}", unit="tensor", file=sys.stderr,
                disable=True if nbytes < PROGRESS_FROM_BYTES else None)
