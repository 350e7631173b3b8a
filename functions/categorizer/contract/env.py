"""Typed settings that write themselves to a process environment and read themselves back.

Why: the CDK app, the local stack, the CLI and the tests must give a function exactly the variables it reads.
Each setting is declared once, as a dataclass field with its variable name and its one default; `to_env()`
produces the environment (infra, local stack) and `from_env()` reads it back at cold start (the functions),
failing with one message that names every missing or malformed variable.

Nested `EnvSettings` fields are groups (for example the learning loop's tuning): they are flattened into the
same environment, so a stage can hold a group and hand it to several functions unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

_ENV = "env"
_ALIASES = "aliases"
_RUNTIME = "runtime"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A function's environment is incomplete or malformed: raised at cold start, naming each variable."""


def setting(env: str, default: Any = dataclasses.MISSING, *, aliases: tuple[str, ...] = (),
            runtime: bool = False) -> Any:
    """A field read from variable `env` (or, if unset, the first set of `aliases`).

    `runtime=True`: the platform sets it (AWS_REGION in Lambda), so `to_env()` never writes it.
    No default: the variable is required.
    """
    metadata = {_ENV: env, _ALIASES: aliases, _RUNTIME: runtime}
    if isinstance(default, tuple | list | dict):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _parse(kind: Any, raw: str) -> Any:
    if kind is bool:
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if typing.get_origin(kind) is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    return str(value)


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


class EnvSettings:
    """Mixin for frozen, keyword-only dataclasses whose fields are `setting(...)`s or nested groups."""

    function_label: ClassVar[str] = "this function"

    @classmethod
    def _fields(cls) -> list[tuple[dataclasses.Field, Any]]:
        hints = typing.get_type_hints(cls)
        return [(f, hints[f.name]) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """Every variable this class reads (nested groups included), for tests and docs."""
        found: list[str] = []
        for f, kind in cls._fields():
            if isinstance(kind, type) and issubclass(kind, EnvSettings):
                found.extend(kind.variables())
            else:
                found.append(f.metadata[_ENV])
        return tuple(found)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        values, problems = cls._read(env)
        if problems:
            raise SettingsError(f"{cls.function_label} cannot start: " + "; ".join(problems))
        try:
            return cls(**values)
        except ValueError as exc:  # __post_init__ checks that involve several variables
            raise SettingsError(f"{cls.function_label} cannot start: {exc}") from exc

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f, kind in cls._fields():
            if isinstance(kind, type) and issubclass(kind, EnvSettings):
                nested, nested_problems = kind._read(env)
                problems.extend(nested_problems)
                if not nested_problems:
                    try:
                        values[f.name] = kind(**nested)
                    except ValueError as exc:
                        problems.append(str(exc))
                continue
            names = (f.metadata[_ENV], *f.metadata[_ALIASES])
            raw = next((env[name] for name in names if env.get(name, "").strip()), None)
            base, optional = _unwrap_optional(kind)
            if raw is None:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    if optional:
                        values[f.name] = None
                    else:
                        problems.append(f"{f.metadata[_ENV]} is not set")
                continue  # the field's own default applies
            try:
                values[f.name] = _parse(base, raw)
            except ValueError as exc:
                problems.append(f"{f.metadata[_ENV]}={raw!r} is malformed ({exc})")
        return values, problems

    def to_env(self) -> dict[str, str]:
        """The variables that make `from_env()` return an equal object (None values are left out)."""
        env: dict[str, str] = {}
        for f, _ in self._fields():
            value = getattr(self, f.name)
            if isinstance(value, EnvSettings):
                env |= value.to_env()
            elif value is not None and not f.metadata[_RUNTIME]:
                env[f.metadata[_ENV]] = _render(value)
        return env
