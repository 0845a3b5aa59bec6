"""Between log intervals the training loop never makes the host wait for the device.

A host sync is any read of a tensor's value on the host: ``item``, ``tolist``, ``float(t)``,
``int(t)``, ``bool(t)`` (an ``if`` on a tensor). They are counted while the real ``Trainer`` runs 8
steps with a log every 4 (from the first step on: start-up, evaluation and checkpoints are not
steps), by who called them: this project's code, DeepSpeed, or anything else.

Both precisions make exactly one sync per log interval in all: the read of the interval's losses,
gradient norm and stop flag. fp32 with ZeRO-0 clips in our code; under bf16 DeepSpeed's
BF16_Optimizer clips, and its two host reads per step (the inf/nan test of the gradient norm, the
clip coefficient compared with 1) are kept on the device by ``pretrain.training.bf16_device_checks``.
"""

from __future__ import annotations

import signal
import sys
from collections import Counter

import pytest
import torch

from pretrain.config import load_config
from pretrain.training.loop import Trainer
from tests.pretrain.conftest import parity_overrides

SYNC_METHODS = ("item", "tolist", "__float__", "__int__", "__bool__")
STEPS, LOG_INTERVAL = 8, 4


def _origin(frame) -> str:
    module = frame.f_globals.get("__name__", "")
    return module.split(".")[0] if module.split(".")[0] in ("pretrain", "deepspeed", "megatron") else "other"


@pytest.fixture
def counted_syncs(monkeypatch):
    """Windows of host syncs from the first training step on, one per log interval: a Counter of
    syncs by origin each."""
    windows: list[Counter] = []
    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def counting(tensor, *args, _original=original, **kwargs):
            if windows:
                windows[-1][_origin(sys._getframe(1))] += 1
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    original_log = Trainer._log_step

    def log_and_close_window(trainer, *args, **kwargs):
        original_log(trainer, *args, **kwargs)
        windows.append(Counter())

    original_step = Trainer.train_step

    def open_the_first_window_and_step(trainer):
        if not windows:
            windows.append(Counter())
        return original_step(trainer)

    monkeypatch.setattr(Trainer, "_log_step", log_and_close_window)
    monkeypatch.setattr(Trainer, "train_step", open_the_first_window_and_step)
    return windows


@pytest.fixture
def restored_signal_handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_host_sync_per_log_interval(precision, counted_syncs, restored_signal_handlers, single_process_groups,
                                        small_vocab_prefix, tmp_path, monkeypatch):
    # The Trainer exports a rendezvous (undone after the test) and takes SIGTERM/SIGINT (see below).
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    config = load_config(None, parity_overrides(small_vocab_prefix, tmp_path, STEPS, f"training.precision={precision}",
                                                f"training.log_interval={LOG_INTERVAL}"))
    result = Trainer(config).run()
    intervals = counted_syncs[:STEPS // LOG_INTERVAL]  # what follows the last log is the final evaluation
    assert sorted(result.losses) == list(range(1, STEPS + 1))
    print(f"{precision}: host syncs per log interval of {LOG_INTERVAL} steps: {[dict(w) for w in intervals]}")
    for window in intervals:
        assert window["pretrain"] == 1 and sum(window.values()) == 1
