"""Errors users see. Each one says what is wrong, where, and how to fix it."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class HegelionError(Exception):
    """Base of every error the CLI prints without a traceback."""


def describe_validation(exc: ValidationError) -> str:
    """`field.sub: problem` for each pydantic error, on one line each."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


class OptionsError(HegelionError):
    """A driver was given options it does not accept."""

    @classmethod
    def from_validation(cls, what: str, exc: ValidationError) -> OptionsError:
        return cls(f"invalid options for {what}: {describe_validation(exc)}")


class InputError(HegelionError):
    """Bad input data, located to file and line (and field, when there is one)."""

    def __init__(
        self,
        path: str | Path,
        line: int | None,
        problem: str,
        *,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path, self.line, self.field, self.problem, self.hint = path, line, field, problem, hint
        where = f"{path}:{line}" if line is not None else str(path)
        if field:
            where += f": field {field!r}"
        text = f"{where}: {problem}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class DriverNotFound(HegelionError):
    """No installed plugin provides the requested driver."""


class DriverLoadError(HegelionError):
    """A driver is installed but its module failed to import."""
