"""Configuration errors that name the key, the value given and what is accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

NAMESPACE = "adplatform"
MAX_GIVEN = 200  # characters of a given value an error message repeats


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the stack configuration."""

    path: str  # key path below the namespace, e.g. "cluster.controlPlane.count"
    message: str  # what is accepted, e.g. "must be odd (1, 3, 5)"
    given: Any = None
    has_given: bool = True

    def __str__(self) -> str:
        key = self.path if ":" in self.path else f"{NAMESPACE}:{self.path}"
        text = f"{key} {self.message}"
        if self.has_given:
            given = repr(self.given)
            if len(given) > MAX_GIVEN:  # a pasted blob: enough of it to recognise, not all of it
                given = f"{given[:MAX_GIVEN]}... ({len(given)} characters)"
            text += f", got {given}"
        return text


def problem(path: str, message: str, *given: Any) -> Problem:
    """Build a Problem; pass the given value as the third argument when there is one."""
    if given:
        return Problem(path, message, given[0])
    return Problem(path, message, has_given=False)


class ConfigError(pulumi.RunError):
    """Raised before any resource exists; pulumi prints it without a traceback."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid stack configuration ({len(self.problems)} {noun}):\n{lines}")
