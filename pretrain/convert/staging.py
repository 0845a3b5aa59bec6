"""Conversion outputs appear whole or not at all.

Everything is written into ``.staging-<name>`` next to the output (the prefix checkpoints use for
their half-written saves) and renamed into place at the end; a failure removes it.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pretrain.checkpoint import STAGING_PREFIX
from pretrain.convert import ConversionError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def staged_directory(final: Path, force: bool) -> Iterator[Path]:
    """An empty directory to write into, renamed to ``final`` when the block succeeds. An existing
    ``final`` that is not an empty directory is refused, or with ``force`` replaced."""
    occupied = final.exists() and (not final.is_dir() or any(final.iterdir()))
    if occupied and not force:
        raise ConversionError(f"{final}: exists and is not empty (--force replaces it)")
    staging = final.parent / f"{STAGING_PREFIX}{final.name}"
    if staging.exists():  # left by an interrupted conversion
        _remove(staging)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if occupied:
        retired = final.parent / f"{STAGING_PREFIX}{final.name}.replaced"
        if retired.exists():
            _remove(retired)
        os.replace(final, retired)
        os.replace(staging, final)
        _remove(retired)
    else:
        os.replace(staging, final)
