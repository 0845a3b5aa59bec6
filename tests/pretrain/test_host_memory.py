"""The benchmarks' host-memory sampler counts a child's private pages, and leaves them out when told."""

import multiprocessing
import time

from pretrain.bench.host_memory import PeakMemory

CHILD_BYTES = 200 * 2**20


def _hold_private_pages(ready) -> None:
    block = bytearray(CHILD_BYTES)  # zero-filled: every page written, so private
    ready.set()
    time.sleep(1.0)
    del block


def _run_child(memory: PeakMemory) -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_hold_private_pages, args=(ready,))
    with memory:
        child.start()
        ready.wait(10)
        time.sleep(0.6)  # more than two of the sampler's children intervals
    child.join()


def test_a_childs_private_pages_are_counted():
    memory = PeakMemory()
    _run_child(memory)
    assert memory.children_peak - memory.children_base >= 0.9 * CHILD_BYTES


def test_children_false_reads_only_this_process():
    memory = PeakMemory(children=False)
    _run_child(memory)
    assert memory.children_peak == 0 and memory.own_above_start < CHILD_BYTES / 2
