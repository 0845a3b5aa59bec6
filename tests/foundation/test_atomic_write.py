"""Whole files or none: text written through foundation.atomic_write appears under its name only
when complete, and ``durable`` reaches the disk before the rename (what checkpoints rely on)."""

from __future__ import annotations

import os

import pytest

from foundation import atomic_write
from foundation.atomic_write import write_text_atomic


def test_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "latest"
    write_text_atomic(path, "step_00000001")
    write_text_atomic(path, "step_00000002")
    assert path.read_text() == "step_00000002"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["latest"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "latest"
    write_text_atomic(path, "old")

    def replace_fails(source, destination):
        raise OSError("disk gone")

    monkeypatch.setattr(atomic_write.os, "replace", replace_fails)
    with pytest.raises(OSError, match="disk gone"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["latest"]


@pytest.mark.parametrize("durable", [True, False])
def test_durable_writes_are_synced_before_the_rename(tmp_path, monkeypatch, durable):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic_write.os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(atomic_write.os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    write_text_atomic(tmp_path / "COMPLETE", "", durable=durable)
    assert events == (["fsync", "replace"] if durable else ["replace"])
