"""Slices of sorted .npy files read with pread (tools/dedup/sorted_file.py) equal numpy's own
searchsorted slices, for band rows of a 2-D array and for a field of a structured one; a damaged
file is one error naming it."""

from __future__ import annotations

import numpy as np
import pytest

from tools.dedup.sorted_file import CorruptFile, SortedFile

EDGE = np.dtype([("a", np.int64), ("b", np.int64), ("sim", np.float64)])


def test_row_slices_equal_numpys(tmp_path):
    rng = np.random.default_rng(0)
    bands = np.sort(rng.integers(0, 2**63, size=(5, 1001), dtype=np.uint64), axis=1)
    np.save(tmp_path / "bands.npy", bands)
    sorted_file = SortedFile(tmp_path / "bands.npy", "rerun")
    assert (sorted_file.rows, sorted_file.length) == (5, 1001)
    for row in range(5):
        for low, high in ((0, 2**62), (2**61, 2**63), (2**63, None), (5, 5)):
            start = np.searchsorted(bands[row], np.uint64(low))
            end = len(bands[row]) if high is None else np.searchsorted(bands[row], np.uint64(high))
            got = sorted_file.slice(np.uint64(low), None if high is None else np.uint64(high), row)
            assert np.array_equal(got, bands[row, start:end])


def test_field_slices_equal_numpys_with_repeated_keys(tmp_path):
    edges = np.zeros(500, dtype=EDGE)
    edges["a"] = np.sort(np.random.default_rng(1).integers(0, 40, size=500))
    edges["b"] = np.arange(500)
    np.save(tmp_path / "edges.npy", edges)
    sorted_file = SortedFile(tmp_path / "edges.npy", "rerun")
    for low, high in ((0, 10), (10, 11), (39, 40), (41, 50)):
        start, end = np.searchsorted(edges["a"], [low, high])
        assert np.array_equal(sorted_file.slice(low, high, field="a"), edges[start:end])


@pytest.mark.parametrize("keep", [100, 400])  # a cut header, cut data
def test_a_cut_file_is_one_error_naming_it(tmp_path, keep):
    path = tmp_path / "edges.npy"
    np.save(path, np.zeros(100, dtype=EDGE))
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(CorruptFile, match=f"{path}: unreadable .*; delete it"):
        SortedFile(path, "delete it")
