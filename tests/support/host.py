"""The test host's side of tests that run real system daemons (SLURM, a Docker engine): installing
Debian packages when they are missing, and telling whether a daemon from a PID file still runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

APT_TIMEOUT_S = 600


def run_or_raise(command: Sequence[str], timeout: float, unavailable: type[Exception],
                 env: dict[str, str] | None = None) -> None:
    """Run ``command`` without input; raise ``unavailable`` with its last output line when it fails."""
    try:
        subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        raise unavailable(f"`{' '.join(command)}` did not finish in {timeout:.0f} s") from None
    except subprocess.CalledProcessError as error:
        last_line = ((error.stderr.strip() or error.stdout.strip()).splitlines() or ["no output"])[-1]
        raise unavailable(f"`{' '.join(command)}` failed: {last_line}") from None


def run_apt(args: Sequence[str], unavailable: type[Exception]) -> None:
    """Run apt-get unattended; raise ``unavailable`` with its last line when it fails."""
    # No standard input and no prompts: CI runs this as root on a fresh machine, unattended. Short
    # network timeouts, so a machine without a route to the mirror gives up in seconds, not minutes.
    command = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=120", "-o", "Acquire::http::Timeout=30",
               "-o", "Acquire::Retries=1", *args]
    run_or_raise(command, APT_TIMEOUT_S, unavailable, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def ensure_installed(what: str, packages: Sequence[str], binaries: Sequence[str],
                     unavailable: type[Exception]) -> None:
    """Install ``packages`` with apt-get when one of ``binaries`` is missing; raise ``unavailable``
    with the reason when that is impossible (no apt-get, not root, no mirror)."""
    missing = [name for name in binaries if shutil.which(name) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise unavailable(f"{what} is not installed (no {', '.join(missing)}) and there is no apt-get")
    if os.geteuid() != 0:
        raise unavailable(f"{what} is not installed (no {', '.join(missing)}) and installing it needs root")
    run_apt(["update"], unavailable)
    run_apt(["install", "-y", "--no-install-recommends", *packages], unavailable)
    still_missing = [name for name in binaries if shutil.which(name) is None]
    if still_missing:
        raise unavailable(f"apt-get installed {' '.join(packages)} but {', '.join(still_missing)} is missing")


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def process_running(pid: int | None) -> bool:
    """True while ``pid`` exists and is not a zombie (an ended daemon waits to be reaped by init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
