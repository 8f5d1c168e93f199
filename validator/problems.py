"""Problems found in a submission, and the library's exceptions.

Every check appends `Problem`s instead of raising, so one call reports everything wrong at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    path: str
    rule: str
    message: str
    hint: str = ""
    severity: Severity = "error"

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.file}::{self.path}: {self.message} [{self.rule}]"


@dataclass
class Problems:
    """Collector bound to one file, so checks only say where inside it."""

    file: str
    items: list[Problem] = field(default_factory=list)

    def error(self, path: str, rule: str, message: str, hint: str = "") -> None:
        self.items.append(Problem(self.file, path, rule, message, hint, "error"))

    def warn(self, path: str, rule: str, message: str, hint: str = "") -> None:
        self.items.append(Problem(self.file, path, rule, message, hint, "warning"))

    def extend(self, other: "Problems | list[Problem]") -> None:
        self.items.extend(other.items if isinstance(other, Problems) else other)


class SpeedrunError(Exception):
    """A usage or environment error the CLI reports in one line with exit code 2."""


class InvalidInput(SpeedrunError):
    """An input file is wrong (not the way the command was called): reported in one line with exit code 1."""


def json_path(parts) -> str:
    """`$.a[0].b` from a sequence of keys and indexes."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p.replace("_", "").replace("-", "").isalnum():
            out += f".{p}"
        else:
            out += "[" + repr(str(p)) + "]"
    return out
