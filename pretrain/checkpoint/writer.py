"""Writing the sharded tensors with megatron-core's ``dist_checkpointing``, in the background or not.

``dist_checkpointing.save(..., async_sharded_save=True)`` plans the save with every rank (cached
after the first: the layout does not change), copies this rank's tensors into host buffers it owns
and returns a request; megatron-core's ``AsyncCallsQueue`` runs the request's writing in a forked
process and, once every rank's writer is done, its finalization (torch.distributed.checkpoint's
``.metadata``, then ours: the marker, the rename, ``latest``) on all ranks together. Training runs
on meanwhile. A synchronous save runs the same request in place. The fork copies the training
process's page tables while training waits; ``qwen-train`` keeps them short by putting large host
tensors on huge pages (``pretrain/host_pages.py``).

At most one save is in flight: the next one, a stop signal and the end of the run wait for it
(:meth:`ShardedWriter.wait`). The queue's completion check is a collective, so the loop polls at
points every rank reaches together (its log steps).

Two process details. megatron-core collects its writer processes' results through a
multiprocessing Manager it starts with ``spawn`` on the first save; that server re-imports the
launching program (seconds of the first save's blocking time). Here the Manager is started by
``fork`` when the writer is made, before the model exists, ignores SIGINT/SIGTERM (the run's own
stop handling still needs it for the final save) and dies with its parent, so a killed run leaves
no process behind.
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from multiprocessing.managers import SyncManager
from pathlib import Path

import torch

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_manager: SyncManager | None = None


def _serve_until_parent_exits() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the Manager still shuts down at a normal exit
        pass


def _results_queue_by_fork() -> None:
    global _manager
    from megatron.core.dist_checkpointing.strategies import filesystem_async

    if filesystem_async._results_queue is None:
        _manager = SyncManager(ctx=torch.multiprocessing.get_context("fork"))
        _manager.start(initializer=_serve_until_parent_exits)
        filesystem_async._results_queue = _manager.Queue()


class ShardedWriter:
    def __init__(self, async_save: bool):
        from megatron.core.dist_checkpointing.strategies.async_utils import AsyncCallsQueue
        from megatron.core.dist_checkpointing.strategies.torch import TorchDistSaveShardedStrategy

        _results_queue_by_fork()
        # One file per rank (thread_count 1): the number of files grows with ranks, not threads.
        self.strategy = TorchDistSaveShardedStrategy("torch_dist", 1, thread_count=1, cached_metadata=True)
        self.queue = AsyncCallsQueue() if async_save else None
        self.in_flight: str | None = None  # the tag being written
        self._validated = False

    def save(self, tensors: list, common: dict, directory: Path, tag: str, finalize: Callable[[], None]) -> None:
        """Write ``tensors`` (and rank 0's ``common``) into ``directory``; ``finalize`` runs on every
        rank once every rank's files are complete. Collective."""
        from megatron.core import dist_checkpointing

        state = {"tensors": {str(index): tensor for index, tensor in enumerate(tensors)}, **common}
        # The sharding is checked across ranks once; later saves of the run have the same layout.
        request = dist_checkpointing.save(state, str(directory), sharded_strategy=self.strategy,
                                          async_sharded_save=True, validate_access_integrity=not self._validated)
        self._validated = True
        request.add_finalize_fn(finalize)
        if self.queue is None:
            request.execute_sync()
            return
        self.queue.schedule_async_request(request)
        self.in_flight = tag

    def poll(self) -> str | None:
        """Finalize the save in flight if every rank's writer is done; the tag finished, if any. Collective."""
        if self.in_flight is None or not self.queue.maybe_finalize_async_calls(blocking=False):
            return None
        finished, self.in_flight = self.in_flight, None
        return finished

    def wait(self) -> str | None:
        """Block until the save in flight is complete; its tag, if there was one. Collective."""
        if self.in_flight is None:
            return None
        self.queue.maybe_finalize_async_calls(blocking=True)
        finished, self.in_flight = self.in_flight, None
        return finished
