"""Process groups: torch.distributed through DeepSpeed, then megatron-core's TP/PP/DP groups.

The launcher is read from the environment: torchrun and the ``deepspeed`` launcher set
RANK/WORLD_SIZE/LOCAL_RANK; ``srun python ...`` sets SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID; with
neither, the run is a single process on a free local port.

Each rank takes GPU ``local_rank % device_count()``: under ``srun --gpus-per-task=1`` every task sees
one GPU (index 0) whatever its local rank. megatron-core's duplicate gloo groups (for its own
distributed optimizer's checkpoints, which DeepSpeed replaces here) are not created. Collectives time
out after ``parallel.timeout_minutes``, raised to ``io_timeout_minutes`` around the phases where
ranks wait for one rank's files (:func:`io_phase`).
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import torch

from pretrain.config import ParallelConfig
from pretrain.parallel.cpu_compat import enable_cpu_execution, without_deepspeed_shm_allreduce


@dataclass(frozen=True)
class LaunchEnv:
    rank: int
    world_size: int
    local_rank: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_launch_env() -> LaunchEnv:
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return LaunchEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and int(env["SLURM_NTASKS"]) > 1:
        return LaunchEnv(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return LaunchEnv(0, 1, 0)


def world_size_from_env() -> int:
    return read_launch_env().world_size


def initialize_distributed(parallel: ParallelConfig, seed: int) -> LaunchEnv:
    """Join the process group and build megatron-core's parallel groups (idempotent)."""
    on_cpu = enable_cpu_execution()
    launch = read_launch_env()
    os.environ.update(RANK=str(launch.rank), WORLD_SIZE=str(launch.world_size), LOCAL_RANK=str(launch.local_rank))
    if launch.world_size == 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    elif "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise RuntimeError("MASTER_ADDR and MASTER_PORT must be set for a multi-process run "
                           "(torchrun sets them; see examples/slurm/ for SLURM)")
    if not on_cpu:
        if parallel.tp > 1:
            # megatron's tensor-parallel layers queue their all-reduce / reduce-scatter before the
            # weight-gradient GEMM so the two overlap; one hardware queue keeps that order. Read when
            # CUDA starts, so it is set before the first CUDA call.
            os.environ.setdefault("CUDA_DEVICE_MAX_CONNECTIONS", "1")
        torch.cuda.set_device(launch.local_rank % torch.cuda.device_count())

    import deepspeed
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    if not torch.distributed.is_initialized():
        if on_cpu:
            without_deepspeed_shm_allreduce()
        deepspeed.init_distributed(dist_backend="gloo" if on_cpu else "nccl", auto_mpi_discovery=False,
                                   verbose=False, timeout=timedelta(minutes=parallel.timeout_minutes))
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=parallel.tp, pipeline_model_parallel_size=parallel.pp,
            distributed_timeout_minutes=parallel.timeout_minutes, create_gloo_process_groups=False)
    torch.manual_seed(seed)
    model_parallel_cuda_manual_seed(seed)
    return launch


def local_device() -> torch.device:
    """This rank's GPU (chosen by :func:`initialize_distributed`), or the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


@contextlib.contextmanager
def io_phase(parallel: ParallelConfig):
    """The default group's collectives (the barriers where ranks wait for rank 0's dataset index or
    checkpoint files, DeepSpeed's and megatron-core's included) time out after ``io_timeout_minutes``
    inside this block, ``timeout_minutes`` again after it (torch's ``_set_pg_timeout``, as torchtitan
    sets its start-up and training timeouts)."""
    from torch.distributed.distributed_c10d import _set_pg_timeout

    _set_pg_timeout(timedelta(minutes=parallel.io_timeout_minutes))
    try:
        yield
    finally:
        _set_pg_timeout(timedelta(minutes=parallel.timeout_minutes))


def destroy_distributed() -> None:
    from megatron.core import parallel_state

    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class MegatronMpu:
    """What DeepSpeed asks of an ``mpu``, answered from megatron-core's groups (the Megatron-DeepSpeed
    convention).

    DeepSpeed's "model parallel" group is megatron's model-parallel group, TP x PP: the gradient
    norm is summed over it and each of its ranks names its own checkpoint file. Parameters
    replicated across the *tensor*-parallel group (norms) are counted on TP rank 0 only, which
    DeepSpeed reads from ``get_tensor_model_parallel_rank``. ZeRO partitions over data parallel.
    """

    def __init__(self):
        from megatron.core import parallel_state

        self._state = parallel_state

    def get_model_parallel_rank(self):
        return self._state.get_model_parallel_group().rank()

    def get_model_parallel_world_size(self):
        return self._state.get_model_parallel_group().size()

    def get_model_parallel_group(self):
        return self._state.get_model_parallel_group()

    def get_tensor_model_parallel_rank(self):
        return self._state.get_tensor_model_parallel_rank()

    def get_tensor_model_parallel_world_size(self):
        return self._state.get_tensor_model_parallel_world_size()

    def get_tensor_model_parallel_group(self):
        return self._state.get_tensor_model_parallel_group()

    def get_data_parallel_rank(self):
        return self._state.get_data_parallel_rank()

    def get_data_parallel_world_size(self):
        return self._state.get_data_parallel_world_size()

    def get_data_parallel_group(self):
        return self._state.get_data_parallel_group()
