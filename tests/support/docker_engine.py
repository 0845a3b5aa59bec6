"""A private Docker engine on this host, for tests that build and run the project's image.

Debian's ``docker.io`` runs when started by hand as root. ``start_engine`` starts one ``dockerd``
with its own data root, exec root, socket and PID file in a fresh directory, so it never touches a
system engine, and without a bridge or iptables rules: builds and containers use the host's network
(``--network host``) or none, so there is no network state to clean up. ``stop`` ends exactly that
daemon (and the containerd it started) and removes its directory.

No registry is reachable here, so base images are made locally: ``debian_python_rootfs`` bootstraps
Debian bookworm with Python (debootstrap) once and keeps the tarball in the test cache
(``$XDG_CACHE_HOME/qwen-pretrain-docker-test``, default ``~/.cache``); ``import_image`` turns it
into an image in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tests.support.host import ensure_installed, process_running, read_pid, run_or_raise

PACKAGES = ("docker.io", "debootstrap")
BINARIES = ("dockerd", "docker", "debootstrap")
START_TIMEOUT_S = 60
BOOTSTRAP_TIMEOUT_S = 900
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The official Debian images' dpkg setting: no fsync per file, which makes apt in a build much faster.
DPKG_UNSAFE_IO = "force-unsafe-io\n"


class EngineUnavailable(RuntimeError):
    """No Docker engine could be installed or started here."""


def cache_dir() -> Path:
    """Where the bootstrapped base and the wheels are kept between test runs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    path = Path(base) / "qwen-pretrain-docker-test"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class DockerEngine:
    root: Path

    @property
    def env(self) -> dict[str, str]:
        # The legacy builder: the one Debian's docker.io has (no buildx).
        return {**os.environ, "DOCKER_HOST": f"unix://{self.root / 'docker.sock'}", "DOCKER_BUILDKIT": "0"}

    @property
    def pid_file(self) -> Path:
        return self.root / "dockerd.pid"

    def docker(self, *args: str, timeout: float, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        """Run a docker client command against this engine (output captured, never raises on failure)."""
        return subprocess.run(["docker", *args], env=self.env, input=stdin, capture_output=True,
                              timeout=timeout, **({} if stdin is not None else {"stdin": subprocess.DEVNULL}))

    def stop(self) -> None:
        """Stop this engine's dockerd (it stops its containerd and containers) and remove its directory."""
        pid = read_pid(self.pid_file)
        if process_running(pid):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process_running(pid):
            time.sleep(0.2)
        # Layers the daemon could not unmount would make the removal fail on a busy mount.
        for mount in _mounts_under(self.root):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return sorted((mount for mount in mounts if mount.startswith(f"{root}/")), reverse=True)


def start_engine() -> DockerEngine:
    """Install docker.io and debootstrap when missing, start a private dockerd, wait until it answers."""
    ensure_installed("Docker", PACKAGES, BINARIES, EngineUnavailable)
    if os.geteuid() != 0:
        raise EngineUnavailable("a Docker engine must be started as root")
    root = Path(tempfile.mkdtemp(prefix="qwen-docker-"))
    engine = DockerEngine(root)
    log = root / "dockerd.log"
    command = ["dockerd", f"--data-root={root / 'data'}", f"--exec-root={root / 'exec'}",
               f"--pidfile={engine.pid_file}", f"--host=unix://{root / 'docker.sock'}",
               "--storage-driver=overlay2", "--bridge=none", "--iptables=false", "--ip-masq=false",
               "--ip-forward=false"]
    with open(log, "wb") as handle:
        daemon = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            engine.stop()
            lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
            raise EngineUnavailable(f"dockerd exited {daemon.returncode}: {(lines or ['no output'])[-1]}")
        if engine.docker("info", timeout=30).returncode == 0:
            return engine
        time.sleep(0.5)
    engine.stop()
    raise EngineUnavailable(f"dockerd did not answer on {root / 'docker.sock'} within {START_TIMEOUT_S} s")


def apt_mirror() -> str:
    """The host's Debian mirror (deb822 sources first, then sources.list), else deb.debian.org."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", path.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        found = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", sources.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    return DEFAULT_MIRROR


def debian_python_rootfs() -> Path:
    """A tarball of Debian bookworm (minbase) with python3, bootstrapped once and cached."""
    tarball = cache_dir() / "bookworm-python3.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(prefix="qwen-rootfs-", dir=cache_dir()) as work:
        rootfs = Path(work) / "rootfs"
        command = ["debootstrap", "--variant=minbase", "--include=python3", "bookworm",
                   str(rootfs), apt_mirror()]
        run_or_raise(command, BOOTSTRAP_TIMEOUT_S, EngineUnavailable)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        (rootfs / "etc/dpkg/dpkg.cfg.d/docker-apt-speedup").write_text(DPKG_UNSAFE_IO)
        partial = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], capture_output=True, check=True)
        partial.replace(tarball)
    return tarball


def import_image(engine: DockerEngine, tarball: Path, tag: str, exclude: Sequence[str] = ()) -> None:
    """``docker import`` the rootfs tarball as ``tag``, leaving out members matching ``exclude``
    (regular expressions on member names, e.g. to make a base without Python)."""
    if exclude:
        pattern = re.compile("|".join(exclude))
        with tempfile.TemporaryDirectory(prefix="qwen-rootfs-") as work:
            filtered = Path(work) / "filtered.tar"
            with tarfile.open(tarball) as source, tarfile.open(filtered, "w") as target:
                for member in source:
                    if not pattern.search(member.name):
                        target.addfile(member, source.extractfile(member) if member.isfile() else None)
            _import(engine, filtered, tag)
    else:
        _import(engine, tarball, tag)


def _import(engine: DockerEngine, tarball: Path, tag: str) -> None:
    result = engine.docker("import", str(tarball), tag, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"docker import {tarball} failed: {result.stderr.decode(errors='replace').strip()}")
