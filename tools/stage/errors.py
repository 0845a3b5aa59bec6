"""The two ways a run stops early: a user error (one line, exit 2) and a stop signal."""

from __future__ import annotations

import signal


class InputError(ValueError):
    """A fatal problem with the command line, the inputs or the output directory; the message is
    one line naming the argument, file or setting."""


class StopSignal(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so it passes every
    ``except Exception`` and each writer's cleanup runs on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
