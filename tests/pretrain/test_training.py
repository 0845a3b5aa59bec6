"""Single-process pretraining: learning, checkpoints, preemption and resume, as real processes."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from pretrain.checkpoint import COMPLETE_MARKER, LATEST, STAGING_PREFIX, STATE_DIR
from tests.pretrain.conftest import run_overrides, run_training_process, start_training, step_losses

pytestmark = pytest.mark.slow


def wait_for(predicate, process, timeout: float = 300.0, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training exited early ({process.returncode}):\n{process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the training run")
        time.sleep(poll)


def latest_tag(checkpoints: Path) -> str | None:
    latest = checkpoints / LATEST
    return latest.read_text().strip() if latest.is_file() else None


@pytest.fixture(scope="module")
def uninterrupted_run(corpus_prefixes, tmp_path_factory) -> Path:
    """12 steps with a checkpoint every 4: the reference for the resume tests."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    done = run_training_process(run_overrides(corpus_prefixes, run_dir, 12, f"checkpoint.dir={run_dir / 'ckpt'}",
                                              "checkpoint.save_interval=4"))
    assert done.returncode == 0, done.stderr
    return run_dir


def test_loss_falls_on_real_text(uninterrupted_run):
    losses = step_losses(uninterrupted_run)
    assert sorted(losses) == list(range(1, 13))
    assert losses[1] > 11.0  # about ln(151,936): nothing learned yet
    assert losses[12] < losses[1] - 1.5


def test_metrics_carry_lr_grad_norm_throughput_and_mfu(uninterrupted_run):
    import json

    records = [json.loads(line) for line in (uninterrupted_run / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in records if r.get("step") == 5 and "loss" in r)
    assert step["lr"] > 0 and step["grad_norm"] > 0 and step["tokens_per_second"] > 0
    assert 0 < step["mfu"] < 1 and step["memory_gib"] > 0
    assert step["mfu"] < step["mfu_palm"] < 1  # PaLM counts the whole attention score matrix


def test_sigkill_during_a_background_save_then_resume_reproduces_the_uninterrupted_losses(
        corpus_prefixes, uninterrupted_run, tmp_path):
    """Killed while step 8's checkpoint is being written (its staging directory exists): nothing
    looks complete that is not, and the resumed run repeats the uninterrupted one's losses."""
    checkpoints = tmp_path / "ckpt"
    overrides = run_overrides(corpus_prefixes, tmp_path, 12, f"checkpoint.dir={checkpoints}",
                              "checkpoint.save_interval=4")
    process = start_training(overrides)
    wait_for(lambda: (checkpoints / f"{STAGING_PREFIX}step_00000008").is_dir(), process, poll=0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    latest = latest_tag(checkpoints)
    assert latest in ("step_00000004", "step_00000008")  # the write may have finished in between
    assert all((path / COMPLETE_MARKER).is_file() for path in checkpoints.glob("step_*"))

    resumed = run_training_process(overrides)
    assert resumed.returncode == 0, resumed.stderr
    resumed_at = int(latest.split("_")[1])
    assert f"resumed from {checkpoints / latest} at step {resumed_at}" in resumed.stderr
    expected, actual = step_losses(uninterrupted_run), step_losses(tmp_path)
    for step in range(resumed_at + 1, 13):
        assert actual[step] == pytest.approx(expected[step], abs=1e-6, rel=0)


def test_a_save_due_while_another_is_written_waits_for_it_and_says_so(corpus_prefixes, tmp_path):
    """Saves every step, the loop polling the writer only at its log steps (here the last): each
    save finds the previous one in flight and waits for it."""
    checkpoints = tmp_path / "ckpt"
    done = run_training_process(run_overrides(corpus_prefixes, tmp_path, 3, f"checkpoint.dir={checkpoints}",
                                              "checkpoint.save_interval=1", "training.log_interval=100"))
    assert done.returncode == 0, done.stderr
    assert "waiting for the save of step_00000001 to finish before saving step_00000002" in done.stderr
    assert sorted(p.name for p in checkpoints.glob("step_*")) == [f"step_0000000{i}" for i in (1, 2, 3)]
    assert all((checkpoints / f"step_0000000{i}" / COMPLETE_MARKER).is_file() for i in (1, 2, 3))


def _shift_metadata(state: Path) -> Path:
    """Metadata that places every chunk 8 bytes after where its file has it; the file it names first."""
    import pickle

    metadata = pickle.loads((state / ".metadata").read_bytes())
    for info in metadata.storage_data.values():
        info.offset, info.length = info.offset + 8, info.length - 8
    (state / ".metadata").write_bytes(pickle.dumps(metadata))
    return sorted(state.glob("*.distcp"))[0]


@pytest.mark.parametrize("damage", ["missing", "truncated", "mismatched"])
def test_a_damaged_latest_checkpoint_is_named_and_the_previous_one_resumes(damage, corpus_prefixes,
                                                                           uninterrupted_run, tmp_path):
    checkpoints = tmp_path / "ckpt"
    for tag in ("step_00000004", "step_00000008"):
        shutil.copytree(uninterrupted_run / "ckpt" / tag, checkpoints / tag)
    (checkpoints / LATEST).write_text("step_00000008")
    victim = sorted((checkpoints / "step_00000008" / STATE_DIR).glob("*.distcp"))[0]
    if damage == "missing":
        victim.unlink()
    elif damage == "truncated":
        with open(victim, "r+b") as handle:
            handle.truncate(victim.stat().st_size - 1)
    else:
        victim = _shift_metadata(checkpoints / "step_00000008" / STATE_DIR)
    expected_damage = {"missing": "missing", "truncated": "truncated", "mismatched": "no tensor at byte"}[damage]

    resumed = run_training_process(run_overrides(corpus_prefixes, tmp_path, 6, f"checkpoint.dir={checkpoints}"))
    assert resumed.returncode == 0, resumed.stderr
    [line] = [line for line in resumed.stderr.splitlines() if "is damaged" in line]
    assert f"{checkpoints / 'step_00000008'} is damaged: {victim}: {expected_damage}" in line
    assert line.endswith("resuming from the previous complete checkpoint step_00000004")
    assert sorted(step_losses(tmp_path)) == [5, 6]
    assert step_losses(tmp_path)[5] == pytest.approx(step_losses(uninterrupted_run)[5], abs=1e-6, rel=0)


def test_sigterm_saves_a_final_checkpoint_and_exits_cleanly(corpus_prefixes, tmp_path):
    """With a save every 2 steps one may be in flight when the signal comes: it is finished, then the final one."""
    checkpoints = tmp_path / "ckpt"
    process = start_training(run_overrides(corpus_prefixes, tmp_path, 1000, f"checkpoint.dir={checkpoints}",
                                           "checkpoint.save_interval=2"))
    wait_for(lambda: (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "metrics.jsonl").read_text(), process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "received SIGTERM" in stderr
    tag = latest_tag(checkpoints)
    assert tag is not None and int(tag.split("_")[1]) < 1000
    assert (checkpoints / tag / COMPLETE_MARKER).is_file()


def test_half_written_checkpoint_is_skipped_with_a_message(corpus_prefixes, uninterrupted_run, tmp_path):
    checkpoints = tmp_path / "ckpt"
    shutil.copytree(uninterrupted_run / "ckpt" / "step_00000004", checkpoints / "step_00000004")
    # A crash after the rename but before the marker existed cannot happen with our writer; a copy
    # tool or a full disk can still leave one, so the reader must not trust `latest` blindly.
    broken = checkpoints / "step_00000008"
    shutil.copytree(uninterrupted_run / "ckpt" / "step_00000008", broken)
    (broken / COMPLETE_MARKER).unlink()
    (checkpoints / ".staging-step_00000012").mkdir()
    (checkpoints / LATEST).write_text("step_00000008")

    resumed = run_training_process(run_overrides(corpus_prefixes, tmp_path, 6, f"checkpoint.dir={checkpoints}"))
    assert resumed.returncode == 0, resumed.stderr
    assert "step_00000008 is incomplete" in resumed.stderr
    assert "resuming from the last complete checkpoint step_00000004" in resumed.stderr
    assert "ignoring half-written checkpoint" in resumed.stderr
    expected = step_losses(uninterrupted_run)
    assert sorted(step_losses(tmp_path)) == [5, 6]  # trained on from step 4, not from scratch
    assert step_losses(tmp_path)[5] == pytest.approx(expected[5], abs=1e-6, rel=0)


def test_rerunning_a_finished_run_trains_and_saves_nothing(corpus_prefixes, uninterrupted_run):
    checkpoints = uninterrupted_run / "ckpt"
    final = checkpoints / "step_00000012"
    written = final.stat().st_mtime_ns
    again = run_training_process(run_overrides(corpus_prefixes, uninterrupted_run, 12,
                                               f"checkpoint.dir={checkpoints}", "checkpoint.save_interval=4"))
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stderr and "checkpoint: saved" not in again.stderr
    assert final.stat().st_mtime_ns == written
    assert sorted(step_losses(uninterrupted_run)) == list(range(1, 13))
