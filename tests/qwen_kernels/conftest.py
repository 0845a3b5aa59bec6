"""Shared fixtures: the extension is compiled (or loaded from its cache) once per session."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def ops():
    from qwen_kernels.build import load

    return load()


@pytest.fixture
def poisoned_outputs():
    """Every new tensor, the kernels' outputs included, starts filled with NaN, so an element a
    kernel forgets to write shows up as NaN (torch's deterministic mode fills empty tensors)."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_filling = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    assert torch.empty(4).isnan().all(), "torch no longer poisons empty tensors: the test would prove nothing"
    yield
    torch.use_deterministic_algorithms(was_deterministic)
    torch.utils.deterministic.fill_uninitialized_memory = was_filling
