"""A small typed loader: TOML tables into frozen dataclasses, every problem with its key path.

Why not a schema library: we want messages a person can act on
(``sla.reply_within: "five minutes" is not a duration (use e.g. "90s", "5m", "12h")``),
unknown keys rejected, durations as a first-class type, and *all* problems reported at
once rather than the first. That is ~150 lines; any feature module can declare its own
settings as a dataclass and get the same checking for free.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from rules.records import Duration, parse_duration


class SettingsError(Exception):
    """All the problems found in one document, each ``key.path: what is wrong``."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt from its own arguments when pickled (a forked worker hands it to the
        # process that reports it): the default would pass the joined message back in
        # as ``problems`` and iterate over its characters.
        return type(self), (self.problems, self.source)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _type_name(tp: Any) -> str:
    if tp is Duration:
        return 'a duration like "5m"'
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(_describe(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a table"
    if get_origin(tp) in (list, tuple):
        return "a list"
    return str(tp)


class _Loader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '(top level)'}: {message}")

    def convert(self, tp: Any, value: Any, path: str) -> Any:
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            return self._union(tp, value, path)
        if tp is Any:
            return value
        if tp is Duration:
            try:
                return parse_duration(value)
            except ValueError as exc:
                self.fail(path, str(exc))
                return None
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(path, f"{_describe(value)} is not true or false")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"{_describe(value)} is not a whole number")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, f"{_describe(value)} is not a number")
                return value
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                self.fail(path, f"{_describe(value)} is not a string")
            return value
        if origin is Literal:
            if value not in get_args(tp):
                self.fail(path, f"{_describe(value)} is not {_type_name(tp)}")
            return value
        if origin in (list, tuple):
            return self._sequence(tp, value, path)
        if origin is dict:
            return self._mapping(tp, value, path)
        if dataclasses.is_dataclass(tp):
            if isinstance(value, Mapping) and "type" in get_type_hints(tp):
                return self._tagged([tp], value, path)
            return self.table(tp, value, path)
        raise TypeError(f"settings loader cannot handle {tp!r} at {path}")

    def _union(self, tp: Any, value: Any, path: str) -> Any:
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        tables = [a for a in options if dataclasses.is_dataclass(a)]
        if tables and isinstance(value, Mapping):
            return self._tagged(tables, value, path)
        if len(options) == 1:
            return self.convert(options[0], value, path)
        for option in options:  # first that fits without a problem
            probe = _Loader()
            result = probe.convert(option, value, path)
            if not probe.problems:
                return result
        self.fail(path, f"{_describe(value)} is not " + " or ".join(map(_type_name, options)))
        return None

    def _tagged(self, tables: list[Any], value: Mapping[str, Any], path: str) -> Any:
        """Differently shaped tables in one list are told apart by their "type" key."""
        kinds = {_type_literal(a): a for a in tables}
        kind = value.get("type")
        if kind not in kinds:
            allowed = ", ".join(f'"{k}"' for k in kinds)
            self.fail(_join(path, "type"), f"{_describe(kind)} is not one of {allowed}")
            return None
        return self.table(kinds[kind], value, path)

    def _sequence(self, tp: Any, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            self.fail(path, f"{_describe(value)} is not a list")
            return ()
        args = get_args(tp)
        if get_origin(tp) is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                self.fail(path, f"needs exactly {len(args)} items, got {len(value)}")
                return ()
            pairs = enumerate(zip(args, value, strict=True))
            return tuple(self.convert(a, v, _join(path, i)) for i, (a, v) in pairs)
        item = args[0] if args else Any
        items = [self.convert(item, v, _join(path, i)) for i, v in enumerate(value)]
        return tuple(items)

    def _mapping(self, tp: Any, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            self.fail(path, f"{_describe(value)} is not a table")
            return {}
        _, vt = get_args(tp) or (str, Any)
        return {str(k): self.convert(vt, v, _join(path, str(k))) for k, v in value.items()}

    def table(self, cls: Any, value: Any, path: str, partial: bool = False) -> Any:
        """``cls`` from the table ``value``, or None when a field was refused. ``partial``:
        build it anyway, each refused field None (see ``load_partial``)."""
        if not isinstance(value, Mapping):
            self.fail(path, f"{_describe(value)} is not a table")
            return None
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for key in value:
            if key not in fields:
                known = ", ".join(sorted(fields))
                self.fail(_join(path, key), f"unknown key (known keys here: {known})")
        kwargs: dict[str, Any] = {}
        refused: list[str] = []
        for name, f in fields.items():
            before = len(self.problems)
            if name in value:
                kwargs[name] = self.convert(hints[name], value[name], _join(path, name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(_join(path, name), f"is required ({_type_name(hints[name])})")
            if len(self.problems) > before:
                refused.append(name)
        if refused and not partial:
            return None  # cross-field checks would only trip over the values already refused
        for name in refused:
            kwargs[name] = _usable(kwargs.get(name))
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            self.fail(path, str(exc))
            return None
        check = getattr(obj, "validate", None)
        if callable(check):
            for key, message in check():
                self.fail(_join(path, key) if key else path, message)
        return obj


def _usable(value: Any) -> Any:
    """What of a refused field later checks can still look at: a table that was built
    (its types are right; only its own ``validate`` found fault), or a list of tables
    with the refused items None; anything else is None."""
    if dataclasses.is_dataclass(value):
        return value
    if isinstance(value, tuple) and value and all(
            v is None or dataclasses.is_dataclass(v) for v in value):
        return value
    return None


def _type_literal(cls: Any) -> Any:
    hint = get_type_hints(cls).get("type")
    if hint is not None and get_origin(hint) is Literal:
        return get_args(hint)[0]
    return cls.__name__


T = typing.TypeVar("T")


def load_table(cls: type[T], data: Mapping[str, Any], source: str = "", path: str = "") -> T:
    """Build ``cls`` from ``data``; raise SettingsError listing every problem.

    A dataclass may define ``validate(self) -> Iterable[tuple[key, message]]`` for
    checks across fields (``warn_at`` before ``reply_within``); keys are relative.
    """
    loader = _Loader()
    result = loader.table(cls, data, path)
    if loader.problems:
        raise SettingsError(loader.problems, source)
    return typing.cast(T, result)


def load_partial(cls: type[T], data: Mapping[str, Any],
                 path: str = "") -> tuple[T | None, list[str]]:
    """Build ``cls`` from ``data`` as far as it goes: the object and every problem found.

    Unlike ``load_table`` a refused field does not stop the rest: it is None in the
    object (a list of tables keeps the items that were built, the others None), and
    ``cls.validate`` still runs, so checks across parts (a digest naming an unknown
    channel) are made on the parts that loaded. ``cls.validate`` must therefore skip
    None parts; the tables inside are built as ``load_table`` builds them.
    """
    loader = _Loader()
    result = loader.table(cls, data, path, partial=True)
    return typing.cast("T | None", result), loader.problems
