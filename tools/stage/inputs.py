"""From ``--input`` arguments (files, directories, globs) to the list of files a stage reads.

A file named on the command line, or matched by a glob, must have a suffix the reader reads
(``streams.READ_SUFFIXES``); anything else is refused in one line, since reading it as JSON
Lines would reject every line. Inside a directory (searched recursively) files with other
suffixes (``README``, ``_SUCCESS``, ``.crc``) are skipped, and the run says so in one warning line
naming how many and the first, and lists them in the manifest. Hidden files and directories
(names starting with ``.``) are not inputs: that is where the stages keep their own state.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from foundation.records.streams import READ_SUFFIXES, is_read
from tools.stage.errors import InputError

_SUFFIX_LIST = ", ".join(READ_SUFFIXES)


@dataclass(frozen=True)
class InputFile:
    path: str
    corpus: int  # index of the --input argument that produced this file


@dataclass
class InputListing:
    files: list[InputFile]
    skipped: list[str] = field(default_factory=list)  # files in input directories with other suffixes

    def warn_skipped(self) -> None:
        if self.skipped:
            print(f"warning: {len(self.skipped)} files in --input directories have suffixes that are not read "
                  f"(first: {self.skipped[0]}); read: {_SUFFIX_LIST}", file=sys.stderr)


def normalized(pattern: str) -> str:
    """``dir/`` and ``dir`` (and ``./dir``) are one input."""
    return os.path.normpath(pattern)


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def list_inputs(patterns: list[str] | tuple[str, ...]) -> InputListing:
    """Files named by ``patterns``, in argument order and sorted within each argument; a file
    named twice is read once."""
    listing = InputListing([])
    seen: set[str] = set()
    for corpus, pattern in enumerate(map(normalized, patterns)):
        if os.path.isdir(pattern):
            root = Path(pattern)
            candidates = sorted(str(p) for p in root.rglob("*") if p.is_file() and _visible(p, root))
            found = [p for p in candidates if is_read(p)]
            listing.skipped.extend(p for p in candidates if not is_read(p))
        elif any(ch in pattern for ch in "*?["):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        elif os.path.lexists(pattern):
            found = [pattern]
        else:
            raise InputError(f"--input {pattern}: no such file or directory")
        if not found:
            raise InputError(f"--input {pattern}: matches no {_SUFFIX_LIST} files")
        unread = [p for p in found if not is_read(p)]
        if unread:
            raise InputError(f"--input {pattern}: {unread[0]} has a suffix that is not read (read: {_SUFFIX_LIST})")
        for path in found:
            if path not in seen:
                seen.add(path)
                listing.files.append(InputFile(path, corpus))
    return listing


def expand_inputs(patterns: list[str] | tuple[str, ...]) -> list[InputFile]:
    return list_inputs(patterns).files
