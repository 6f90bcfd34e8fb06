"""`record`: the project's dataclass decorator, minus the code generation that made startup slow.

On CPython 3.11 `@dataclass(frozen=True)` writes and compiles six functions for every class as it
is defined (`__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`, `__delattr__`): ~0.6 ms a
class, and a warm run defines ~95 of ours before it does any work (60-90 ms of a 0.6 s run).
`record` lets `dataclasses` itself register the fields, so every reader of dataclasses keeps
working (`fields`, `replace`, `asdict`, `is_dataclass`, orjson, pattern matching), then gives the
class plain closures over its field names for repr, comparison, hashing and immutability, and
compiles only `__init__`, the one method whose speed counts per instance (compiling it on first
use instead would save ~1 ms a run and change what `inspect.signature` sees before then).

What a class sees is what `dataclass` gives it: the same `__init__` parameters and defaults
(`default_factory`, `init=False`, `kw_only`), `__post_init__`, the same repr, equality over the
`compare` fields, the hash of the hashed fields when frozen (`__hash__ = None` when mutable),
ordering with `order=True`, `FrozenInstanceError` on assignment, and whatever the class defines
itself left alone. What differs: a class without a docstring is described as `Name(field, ...)`
(`dataclass` signs it with `inspect`); `InitVar` (a `TypeError` at definition) and `slots` are not
supported, and nothing here uses them.

No library fitted: attrs writes and compiles its methods the same way, and msgspec's C structs,
quick to define, are not dataclasses (`fields`, `replace`, orjson and every typed reader of
`dataclasses` would change with them).
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_Getter = Callable[[Any], tuple[Any, ...]]


@overload
def record(cls: type[_T], /) -> type[_T]: ...


@overload
def record(
    *, frozen: bool = True, eq: bool = True, order: bool = False, repr: bool = True
) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(
    cls: type[_T] | None = None,
    /,
    *,
    frozen: bool = True,
    eq: bool = True,
    order: bool = False,
    repr: bool = True,
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """`@record` (frozen) or `@record(frozen=False, eq=..., order=..., repr=...)`: a dataclass
    with `dataclass`'s behaviour for these flags (see the module for what differs inside)."""

    def wrap(c: type[_T]) -> type[_T]:
        return _build(c, frozen=frozen, eq=eq, order=order, want_repr=repr)

    return wrap if cls is None else wrap(cls)


def _build(cls: type[_T], *, frozen: bool, eq: bool, order: bool, want_repr: bool) -> type[_T]:
    if order and not eq:
        raise TypeError("eq must be true if order is true")
    own = cls.__dict__
    if frozen and ("__setattr__" in own or "__delattr__" in own):
        raise TypeError(
            f"cannot overwrite __setattr__ or __delattr__ in frozen record {cls.__name__}"
        )
    for base in cls.__mro__[1:]:
        base_frozen = base.__dict__.get("__record_frozen__")
        if base_frozen is not None and base_frozen != frozen:
            raise TypeError(f"record {cls.__name__}: frozen must match its base {base.__name__}")
    had_doc = bool(own.get("__doc__"))
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if not had_doc:
        cls.__doc__ = cls.__name__  # else `dataclass` signs the `__init__` it did not write
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    kept = {f.name for f in fields}
    for name, f in cls.__dict__["__dataclass_fields__"].items():
        if name not in kept and "InitVar" in str(f.type):
            raise TypeError(f"record {cls.__name__}: InitVar fields are not supported")
    _check_defaults(cls, fields)
    cls.__record_frozen__ = frozen  # type: ignore[attr-defined]
    names = tuple(f.name for f in fields)

    def put(name: str, value: Any) -> None:
        if name not in own:
            setattr(cls, name, value)

    put("__init__", _compile_init(cls, fields, frozen))
    if want_repr:
        put("__repr__", _repr(cls, tuple(f.name for f in fields if f.repr)))
    if eq:
        compared = _getter(tuple(f.name for f in fields if f.compare))
        put("__eq__", _eq(compared))
        if order:
            for name, op in (("__lt__", operator.lt), ("__le__", operator.le),
                             ("__gt__", operator.gt), ("__ge__", operator.ge)):  # fmt: skip
                if name in own:
                    raise TypeError(f"cannot overwrite {name} in record {cls.__name__}")
                setattr(cls, name, _compare(compared, op))
        if not explicit_hash:
            hashed = _getter(
                tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
            )
            setattr(cls, "__hash__", _hash(hashed) if frozen else None)  # noqa: B010
    if frozen:
        setter, deleter = _frozen(cls, frozenset(names))
        setattr(cls, "__setattr__", setter)  # noqa: B010
        setattr(cls, "__delattr__", deleter)  # noqa: B010
    if not had_doc:
        cls.__doc__ = f"{cls.__name__}({', '.join(f.name for f in fields if f.init)})"
    return cls


def _check_defaults(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> None:
    """`dataclass`'s rule, at definition as it checks it: no positional parameter without a
    default after one with a default."""
    seen_default = False
    for f in fields:
        if not f.init or f.kw_only:
            continue
        has = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if seen_default and not has:
            raise TypeError(
                f"record {cls.__name__}: non-default argument {f.name!r} follows default argument"
            )
        seen_default = seen_default or has


def _getter(names: tuple[str, ...]) -> _Getter:
    """The values compared, as a tuple (as `dataclass` compares them, identity first)."""
    if not names:
        return lambda _self: ()
    if len(names) == 1:
        one = names[0]
        return lambda self: (getattr(self, one),)
    got: _Getter = operator.attrgetter(*names)
    return got


def _repr(cls: type, names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__qualname__}({inner})"

    __repr__.__qualname__ = f"{cls.__qualname__}.__repr__"
    return reprlib.recursive_repr()(__repr__)


def _eq(values: _Getter) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    return __eq__


def _compare(values: _Getter, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def compare(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return op(values(self), values(other))
        return NotImplemented

    return compare


def _hash(values: _Getter) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _frozen(
    cls: type[Any], names: frozenset[str]
) -> tuple[Callable[[Any, str, Any], None], Callable[[Any, str], None]]:
    """`dataclass`'s rule: no assignment on the record itself, nor to a field on a subclass."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


class _Factory:
    """The default of a parameter whose field has a `default_factory` (shown as `dataclass`
    shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _compile_init(
    cls: type, fields: tuple[dataclasses.Field[Any], ...], frozen: bool
) -> Callable[..., None]:
    """The `__init__` `dataclass` would write: same parameters, defaults and assignments."""
    # The helpers' names are dunders so that no field name can shadow them.
    env: dict[str, Any] = {"__FACTORY__": _FACTORY, "__set__": object.__setattr__}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in fields:
        name = f.name
        value: str | None = name
        if f.default is not dataclasses.MISSING:
            env[f"__dflt_{name}__"] = f.default
            default = f"=__dflt_{name}__"
            if not f.init:
                value = f"__dflt_{name}__"
        elif f.default_factory is not dataclasses.MISSING:
            env[f"__fact_{name}__"] = f.default_factory
            made = f"__fact_{name}__()"
            default = "=__FACTORY__"
            value = f"{made} if {name} is __FACTORY__ else {name}" if f.init else made
        else:
            default = ""
            if not f.init:
                value = None
        if f.init:
            (keyword if f.kw_only else positional).append(f"{name}{default}")
        if value is not None:
            body.append(
                f"  __set__(self, {name!r}, {value})" if frozen else f"  self.{name} = {value}"
            )
    if hasattr(cls, "__post_init__"):
        body.append("  self.__post_init__()")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({params}):\n" + ("\n".join(body) or "  pass") + "\n"
    exec(source, env)  # the source is built above from the field names alone
    init: Callable[..., None] = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {f.name: f.type for f in fields if f.init} | {"return": None}
    return init
