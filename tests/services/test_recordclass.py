"""`record` behaves as `dataclass` does: each shape is declared twice, once with each decorator,
and every observable behaviour is compared between the two."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from collections.abc import Callable
from dataclasses import KW_ONLY, FrozenInstanceError, field
from typing import Any, ClassVar

import orjson
import pytest

from services.recordclass import record

Decorate = Callable[[type], type]


def _twins(make: Callable[[Decorate], type], **flags: Any) -> tuple[type, type]:
    """The class `make` builds, under `dataclass(**flags)` and under `record(**flags)`."""
    frozen = flags.pop("frozen", False)
    plain = make(lambda c: dataclasses.dataclass(c, frozen=frozen, **flags))
    ours = make(lambda c: record(frozen=frozen, **flags)(c))
    return plain, ours


def _point(deco: Decorate) -> type:
    @deco
    class Point:
        x: int
        y: float = 1.5
        tags: list[str] = field(default_factory=list)
        note: str = field(default="n", repr=False, compare=False)
        unit: ClassVar[str] = "m"

    return Point


class _Pickled:
    a: int
    b: str = "b"


_PickledRecord = record(_Pickled)


@pytest.mark.parametrize("frozen", [True, False])
def test_construction_repr_equality_and_fields_match_dataclass(frozen: bool) -> None:
    plain, ours = _twins(_point, frozen=frozen)
    assert dataclasses.is_dataclass(ours)
    assert str(inspect.signature(ours)) == str(inspect.signature(plain))
    assert [f.name for f in dataclasses.fields(ours)] == ["x", "y", "tags", "note"]
    assert ours.__match_args__ == plain.__match_args__
    p, o = plain(1), ours(1)
    assert repr(o) == repr(p).replace(plain.__qualname__, ours.__qualname__)
    assert dataclasses.asdict(o) == dataclasses.asdict(p)
    assert dataclasses.astuple(o) == dataclasses.astuple(p)
    assert ours(1, 2.0, ["a"], "one") == ours(1, 2.0, ["a"], "other")  # note: compare=False
    assert ours(1) != ours(2)
    assert ours(1) != p and p != ours(1)
    assert ours(1).tags is not ours(1).tags  # a fresh default per instance
    assert ours(x=3, tags=["t"]).tags == ["t"]
    with pytest.raises(TypeError) as theirs:
        plain()
    with pytest.raises(TypeError) as mine:
        ours()
    assert "missing 1 required positional argument: 'x'" in str(theirs.value)
    assert "missing 1 required positional argument: 'x'" in str(mine.value)


def test_frozen_hash_assignment_and_replace() -> None:
    plain, ours = _twins(_point, frozen=True)
    o = ours(1, tags=("a",))  # hashable field values
    assert hash(o) == hash(ours(1, tags=("a",), note="other"))
    assert {o, ours(1, tags=("a",))} == {o}
    for target in (o, plain(1)):
        with pytest.raises(FrozenInstanceError):
            target.x = 2  # type: ignore[attr-defined]
        with pytest.raises(FrozenInstanceError):
            del target.x  # type: ignore[attr-defined]
        with pytest.raises(FrozenInstanceError):
            target.extra = 1  # type: ignore[attr-defined]
    moved = dataclasses.replace(o, x=5)
    assert (moved.x, moved.tags, type(moved)) == (5, ("a",), ours)
    assert copy.deepcopy(o) == o and copy.copy(o) == o


def test_mutable_records_assign_and_are_unhashable_like_dataclass() -> None:
    plain, ours = _twins(_point, frozen=False)
    o = ours(1)
    o.x = 7
    assert o.x == 7 and o == ours(7)
    assert ours.__hash__ is None and plain.__hash__ is None
    with pytest.raises(TypeError):
        hash(o)


def test_order_compares_field_tuples_and_refuses_other_classes() -> None:
    def ranked(deco: Decorate) -> type:
        @deco
        class Ranked:
            a: int
            b: str

        return Ranked

    plain, ours = _twins(ranked, frozen=True, order=True)
    pairs = [((1, "b"), (2, "a")), ((1, "a"), (1, "b")), ((1, "a"), (1, "a"))]
    for left, right in pairs:
        for name in ("__lt__", "__le__", "__gt__", "__ge__"):
            expect = getattr(plain(*left), name)(plain(*right))
            assert getattr(ours(*left), name)(ours(*right)) == expect
    assert sorted([ours(2, "a"), ours(1, "z")]) == [ours(1, "z"), ours(2, "a")]
    with pytest.raises(TypeError):
        _ = ours(1, "a") < plain(1, "a")
    with pytest.raises(TypeError, match="eq must be true"):
        record(eq=False, order=True)(type("X", (), {"__annotations__": {"a": "int"}}))


def test_eq_false_keeps_identity_equality_and_hash() -> None:
    plain, ours = _twins(_point, frozen=True, eq=False)
    a, b = ours(1), ours(1)
    assert a != b and a == a
    assert hash(a) == object.__hash__(a)
    assert plain(1) != plain(1)


def test_repr_false_keeps_object_repr() -> None:
    plain, ours = _twins(_point, frozen=False, repr=False)
    assert repr(ours(1)).startswith("<") and repr(plain(1)).startswith("<")


def test_init_false_kw_only_and_post_init() -> None:
    seen: list[tuple[int, int]] = []

    def shaped(deco: Decorate) -> type:
        @deco
        class Shaped:
            a: int
            derived: int = field(init=False, default=0)
            made: list[int] = field(init=False, default_factory=list)
            _: KW_ONLY
            k: int = 9
            late: int = field(kw_only=True, default=4)

            def __post_init__(self) -> None:
                object.__setattr__(self, "derived", self.a * 2)
                seen.append((self.a, self.k))

        return Shaped

    plain, ours = _twins(shaped, frozen=True)
    assert str(inspect.signature(ours)) == str(inspect.signature(plain))
    o = ours(3, k=1)
    assert (o.derived, o.made, o.k, o.late) == (6, [], 1, 4)
    assert repr(o).split("(", 1)[1] == repr(plain(3, k=1)).split("(", 1)[1]
    with pytest.raises(TypeError):
        ours(3, 1)  # k is keyword-only
    assert seen == [(3, 1), (3, 1)]


def test_methods_the_class_defines_are_kept() -> None:
    @record
    class Own:
        a: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 7

    assert (repr(Own(1)), Own(1) == Own(2), hash(Own(1))) == ("own", True, 7)


def test_inheritance_extends_fields_and_keeps_frozenness_consistent() -> None:
    @record
    class Base:
        a: int
        b: int = 2

    @record
    class Child(Base):
        c: int = 3

    child = Child(1)
    assert (child.a, child.b, child.c) == (1, 2, 3)
    assert repr(child) == f"{Child.__qualname__}(a=1, b=2, c=3)"
    assert child != Base(1, 2) and Base(1) == Base(1, 2)

    class Plain(Base):  # a subclass that is no record itself inherits the methods
        pass

    assert Plain(5).a == 5
    with pytest.raises(TypeError, match="frozen must match"):

        @record(frozen=False)
        class Thawed(Base):
            pass


def test_pickle_orjson_and_matching() -> None:
    o = _PickledRecord(1)
    assert pickle.loads(pickle.dumps(o)) == o
    assert orjson.loads(orjson.dumps(o)) == {"a": 1, "b": "b"}
    match o:
        case _PickledRecord(a, b):
            assert (a, b) == (1, "b")
        case _:
            pytest.fail("positional match failed")


def test_unsupported_and_invalid_shapes_fail_at_definition() -> None:
    with pytest.raises(TypeError, match="InitVar"):

        @record
        class WithInitVar:
            a: dataclasses.InitVar[int]

    with pytest.raises(TypeError, match="__setattr__"):

        @record
        class Guarded:
            a: int

            def __setattr__(self, name: str, value: Any) -> None:
                pass

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @record
        class BadOrder:
            a: int = 1
            b: int  # type: ignore[misc]


def test_undocumented_record_is_described_by_its_fields() -> None:
    @record
    class Bare:
        a: int
        b: int = 0

    assert Bare.__doc__ == "Bare(a, b)"
    assert _PickledRecord.__doc__ == "_Pickled(a, b)"


def test_field_names_cannot_shadow_the_generated_init() -> None:
    @record
    class Shadowing:
        _set: int
        _FACTORY: list[int] = field(default_factory=list)
        self_: str = "s"

    s = Shadowing(1)
    assert (s._set, s._FACTORY, s.self_) == (1, [], "s")
