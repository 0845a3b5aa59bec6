"""The throughput window counts training time only (a fake clock: tests never time anything)."""

from __future__ import annotations

from pretrain.training import step_metrics
from pretrain.training.step_metrics import ThroughputWindow


def test_evaluation_and_checkpoint_time_are_left_out_of_the_window(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(step_metrics.time, "perf_counter", lambda: now[0])
    window = ThroughputWindow()
    now[0] += 3.0  # two training steps
    window.count_step()
    window.count_step()
    with window.excluding():  # an evaluation
        now[0] += 5.0
    now[0] += 1.0  # a third step
    window.count_step()
    with window.excluding():  # a checkpoint
        now[0] += 20.0
    assert window.steps == 3 and window.seconds() == 4.0
    window.restart()
    now[0] += 2.0
    assert window.steps == 0 and window.seconds() == 2.0
