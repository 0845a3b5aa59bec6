"""The allowed values of a stage setting, declared once on its dataclass field and checked when
the settings are built, so the CLI flags and the pipeline YAML refuse the same values.

    threshold: float = field(default=0.8, metadata=allowed(low=0, high=1, low_open=True))

A settings dataclass calls ``check_settings(self)`` in ``__post_init__``; a value out of range
raises ``SettingError``, which the CLI words with the flag and the pipeline with the YAML key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tools.stage.errors import InputError


@dataclass(frozen=True)
class Allowed:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def holds(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def __str__(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"


def allowed(**kwargs: Any) -> dict[str, Allowed]:
    """Field metadata declaring the allowed values (``Allowed``'s fields as keywords)."""
    if "choices" in kwargs:
        kwargs["choices"] = tuple(kwargs["choices"])
    return {"allowed": Allowed(**kwargs)}


class SettingError(InputError):
    def __init__(self, name: str, value: Any, requirement: Allowed):
        super().__init__(f"{name} must be {requirement}, got {value!r}")
        self.name, self.value, self.requirement = name, value, requirement

    def for_flag(self, flags: dict[str, str] | None = None) -> InputError:
        """The same problem named by its command-line flag."""
        flag = (flags or {}).get(self.name, "--" + self.name.replace("_", "-"))
        return InputError(f"{flag} must be {self.requirement}, got {self.value!r}")


def check_settings(settings: Any) -> None:
    for item in dataclasses.fields(settings):
        requirement = item.metadata.get("allowed")
        value = getattr(settings, item.name)
        if requirement is not None and not requirement.holds(value):
            raise SettingError(item.name, value, requirement)
