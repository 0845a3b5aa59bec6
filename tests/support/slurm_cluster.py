"""A real SLURM cluster on this one host, for tests that submit jobs.

Debian's SLURM runs as root without systemd. ``start_cluster`` writes a configuration into a fresh
directory, starts a private ``munged`` (own key and socket, so it never touches a system munge), one
``slurmctld`` and one ``slurmd -N`` per emulated node, and waits until every node is idle. All ports
are picked free at start-up, so two clusters (two test sessions) can run side by side. ``stop``
ends exactly the daemons it started, by their PID files.

The ``slurm_cluster`` fixture installs the packages when they are missing and skips the test with
the reason when SLURM can neither be found nor installed.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

from tests.support.host import ensure_installed, process_running, read_pid

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
START_TIMEOUT_S = 60
# Jobs in these states are over (squeue stops listing a job shortly after it ends).
FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                   "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


class SlurmUnavailable(RuntimeError):
    """SLURM is not installed and could not be installed here."""


def ensure_slurm_installed() -> None:
    """Install Debian's SLURM and munge when a binary is missing; raise SlurmUnavailable if impossible."""
    ensure_installed("SLURM", PACKAGES, BINARIES, SlurmUnavailable)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    meminfo = Path("/proc/meminfo").read_text()
    return int(re.search(r"MemTotal:\s+(\d+) kB", meminfo).group(1)) // 1024


@dataclass
class SlurmCluster:
    """A running cluster; commands see it through ``SLURM_CONF`` in ``env``."""

    root: Path
    nodes: list[str]
    pid_files: list[Path] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        # Jobs inherit this environment (sbatch --export=ALL). Rank variables left in the test
        # process by an in-process training fixture would make every task think it is rank 0.
        inherited = {key: value for key, value in os.environ.items() if key not in LAUNCHER_VARIABLES}
        return {**inherited, "SLURM_CONF": str(self.conf)}

    def command(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """Run a SLURM client command against this cluster and return its standard output."""
        result = subprocess.run(args, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def node_states(self) -> dict[str, str]:
        lines = self.command("sinfo", "-h", "-N", "-o", "%N %t").split()
        return dict(zip(lines[0::2], lines[1::2]))

    def sbatch(self, script: Path, options: Sequence[str] = (), args: Sequence[str] = (),
               env: Mapping[str, str] | None = None) -> int:
        """Submit ``script`` with sbatch ``options``, script ``args`` and extra ``env``; return the job id."""
        return int(self.command("sbatch", "--parsable", *options, str(script), *args, env=env).split(";")[0])

    def job_state(self, job_id: int) -> str:
        """The job's state; for an array job, a running task's state, else the worst final one."""
        states = self.command("squeue", "-h", "-j", str(job_id), "-t", "all", "-o", "%T").split()
        unfinished = [state for state in states if state not in FINISHED_STATES]
        failed = [state for state in states if state != "COMPLETED"]
        if not states:
            return "UNKNOWN"
        return (unfinished or failed or ["COMPLETED"])[0]

    def wait(self, job_id: int, timeout: float) -> str:
        """Poll until the job is over and return its final state (``sbatch --wait`` polls too slowly)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in FINISHED_STATES:
                return state
            time.sleep(1)
        self.command("scancel", str(job_id))
        raise TimeoutError(f"SLURM job {job_id} still {self.job_state(job_id)!r} after {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the daemons this cluster started (by their PID files) and remove its directory."""
        pids = [read_pid(pid_file) for pid_file in reversed(self.pid_files)]
        for pid in pids:
            if process_running(pid):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(map(process_running, pids)):
            time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)


def _start_munged(root: Path) -> Path:
    """A private munged: its own key and socket under ``root``; munged refuses to run as root."""
    munge = pwd.getpwnam("munge")
    directory = root / "munge"
    directory.mkdir(mode=0o755)
    os.chown(directory, munge.pw_uid, munge.pw_gid)
    key = directory / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o400)
    pid_file = directory / "munged.pid"
    subprocess.run(["runuser", "-u", "munge", "--", "munged", f"--key-file={key}",
                    f"--socket={directory / 'munge.socket'}", f"--pid-file={pid_file}",
                    f"--log-file={directory / 'munged.log'}", f"--seed-file={directory / 'munged.seed'}"],
                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=True)
    return pid_file


def _write_conf(root: Path, nodes: Sequence[str], cpus: int) -> None:
    node_lines = [f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={free_port()} "
                  f"CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 "
                  f"RealMemory={_memory_mb() // (2 * len(nodes))}" for node in nodes]
    (root / "slurm.conf").write_text("\n".join([
        f"ClusterName=qwentest{os.getpid()}",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        # Schedule every second (default 60): a chain of dependent jobs then starts each job about
        # a second after the one before ends, not several.
        "SchedulerParameters=sched_interval=1,sched_min_interval=100000",
        # Trust the declared CPUs and memory, so a node never goes `inval` on a differently built host.
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        # Without it an impossible request pends forever instead of being refused at submission.
        "EnforcePartLimits=ALL",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool' / '%n'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd-%n.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd-%n.log'}",
        *node_lines,
        "PartitionName=test Nodes=ALL Default=YES MaxTime=30 State=UP",
        "",
    ]))


def start_cluster(nodes: Sequence[str] = ("node1", "node2")) -> SlurmCluster:
    """Start munged, slurmctld and one slurmd per node; return once every node is idle."""
    ensure_slurm_installed()
    if os.geteuid() != 0:
        raise SlurmUnavailable("munged and the SLURM daemons of a test cluster must be started as root")
    # Not pytest's tmp_path: munged needs every directory above its socket to be world-executable.
    root = Path(tempfile.mkdtemp(prefix="qwen-slurm-"))
    root.chmod(0o755)
    (root / "state").mkdir()
    (root / "spool").mkdir()
    cluster = SlurmCluster(root=root, nodes=list(nodes))
    try:
        cluster.pid_files.append(_start_munged(root))
        _write_conf(root, nodes, cpus=os.cpu_count() or 1)
        _start_daemon(cluster, ["slurmctld", "-c", "-f", str(cluster.conf)], "slurmctld")
        for node in nodes:
            _start_daemon(cluster, ["slurmd", "-f", str(cluster.conf), "-N", node], f"slurmd-{node}")
        _wait_until_idle(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemon(cluster: SlurmCluster, command: list[str], name: str) -> None:
    """Start a daemonizing SLURM daemon whose PID file and log are ``root/<name>.pid|.log``."""
    cluster.pid_files.append(cluster.root / f"{name}.pid")
    result = subprocess.run(command, env=cluster.env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=30)
    if result.returncode != 0:
        log = cluster.root / f"{name}.log"
        details = result.stderr.strip() or (log.read_text().strip() if log.exists() else "no log")
        raise RuntimeError(f"{name} did not start: {details.splitlines()[-1]}")


def _wait_until_idle(cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            states = cluster.node_states()
        except RuntimeError:  # slurmctld not answering yet
            states = {}
        if states and all(states.get(node) == "idle" for node in cluster.nodes):
            return
        time.sleep(0.5)
    raise RuntimeError(f"SLURM nodes not idle after {START_TIMEOUT_S} s: {states or 'no answer from slurmctld'}")


class _SessionCluster:
    """One cluster shared by every test module that imports the fixture: pytest makes a separate
    session fixture per importing module, so the cluster is counted out and stopped by the last."""

    def __init__(self):
        self.cluster: SlurmCluster | None = None
        self.users = 0
        self.unavailable: str | None = None

    def acquire(self) -> SlurmCluster:
        if self.cluster is None and self.unavailable is None:
            try:
                self.cluster = start_cluster()
            except SlurmUnavailable as reason:
                self.unavailable = f"SLURM unavailable: {reason}"
        if self.cluster is None:
            pytest.skip(self.unavailable)
        self.users += 1
        return self.cluster

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.cluster.stop()
            self.cluster = None


_SESSION_CLUSTER = _SessionCluster()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A two-node cluster for the whole session; skips (with the reason) when SLURM is unavailable."""
    cluster = _SESSION_CLUSTER.acquire()
    try:
        yield cluster
    finally:
        _SESSION_CLUSTER.release()
