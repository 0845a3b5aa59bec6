"""Large host tensors on transparent huge pages, asked for before torch's first allocation.

An asynchronous checkpoint forks its writer from the training process (megatron-core's
``TemporalAsyncCaller``), and ``fork`` copies the page-table entries of the parent's whole address
space while training waits: one per 4 KiB page, about a million for a rank holding 4 GiB of
weights and Adam moments on the host. PyTorch's CPU allocator advises every allocation of 2 MiB or
more ``MADV_HUGEPAGE`` when ``THP_MEM_ALLOC_ENABLE=1``, and the kernel backs it with 2 MiB pages;
the fork then copies one entry per 2 MiB (measured on 4 GiB of tensors: 0.12-0.19 s per fork without,
0.02-0.03 s with). The allocator reads the variable once, at its first allocation, so ``qwen-train``
sets it first thing, before anything makes a tensor; only the training processes ask, so that
other commands (``qwen-bench kernels`` among them) measure torch's default allocator.

A value the user set (``THP_MEM_ALLOC_ENABLE=0``) is kept. Where the kernel's transparent huge
pages are ``never`` the advice is ignored; where they are ``always`` it changes nothing.
"""

from __future__ import annotations

import os

VARIABLE = "THP_MEM_ALLOC_ENABLE"


def prefer_huge_pages() -> None:
    os.environ.setdefault(VARIABLE, "1")
