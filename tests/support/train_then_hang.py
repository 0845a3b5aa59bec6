"""``qwen-train`` that stands still before one step, its last checkpoint complete, until killed.

A test that SIGKILLs a run after a given checkpoint cannot win the race against a fast machine by
polling: a tiny model may save its next checkpoint, or finish, between two polls. This entry point
makes the point of the kill deterministic without changing what the run computes up to it.

    python -m tests.support.train_then_hang STEP [qwen-train arguments...]

Before the optimizer step after ``STEP``, the run waits for its background save to become the
latest checkpoint, prints ``HANGING_MARKER`` to stderr and blocks.
"""

from __future__ import annotations

import sys
import threading

from pretrain.cli.train import run
from pretrain.training.loop import Trainer

HANGING_MARKER = "train_then_hang: waiting to be killed"


def hang_before_step_after(step: int) -> None:
    train_step = Trainer.train_step

    def train_step_or_hang(trainer: Trainer):
        if trainer.state.step == step:
            trainer.store.wait()
            print(HANGING_MARKER, file=sys.stderr, flush=True)
            threading.Event().wait()
        return train_step(trainer)

    Trainer.train_step = train_step_or_hang


if __name__ == "__main__":
    hang_before_step_after(int(sys.argv[1]))
    sys.exit(run(sys.argv[2:]))
