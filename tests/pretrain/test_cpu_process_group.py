"""Joining the process group on CPU compiles nothing (a read-only container image has no compiler
and no writable extensions cache)."""

from __future__ import annotations

from tests.pretrain.conftest import single_process_groups  # noqa: F401  (fixture)


def test_deepspeed_backend_on_cpu_starts_without_building_its_shm_allreduce(single_process_groups):
    from deepspeed import comm

    # Built, it would be a module here (DeepSpeed compiles it on first use, or loads a prebuilt one).
    assert comm.comm.cdb.shm_comm_op is None
    assert comm.get_world_size() == 1
