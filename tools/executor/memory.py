"""Peak memory of one item of work, for the per-step figures in manifests and benchmarks.

Linux keeps a process's high-water resident set size (``VmHWM``) and lets the process reset it
(writing 5 to ``/proc/self/clear_refs``), so a worker that runs several items reports each one's
own peak. Elsewhere the figure is the process's peak so far (``ru_maxrss``).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> None:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_mb() -> float:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)
