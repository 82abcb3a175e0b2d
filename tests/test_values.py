"""`tia.values`: the record classes' equality, hashing and repr, by their slotted fields."""

from __future__ import annotations

import pytest

from tia.values import FrozenValue, Value


class Point(Value):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


class Labelled(Point):
    __slots__ = ("label",)

    def __init__(self, x: int, y: int, label: str) -> None:
        super().__init__(x, y)
        self.label = label


class Key(FrozenValue):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def test_fields_are_the_slots_of_the_class_and_its_bases_bases_first() -> None:
    assert Point._fields == ("x", "y")
    assert Labelled._fields == ("x", "y", "label")


def test_equal_by_class_and_every_field() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Labelled(1, 2, "a") != Labelled(1, 2, "b")
    # Another class with the same fields is not equal, as with dataclasses.
    assert Point(1, 2) != Labelled(1, 2, "a")
    assert Labelled(1, 2, "a") != Point(1, 2)
    assert Point(1, 2) != (1, 2)


def test_a_value_is_unhashable_and_a_frozen_value_hashes_by_its_fields() -> None:
    with pytest.raises(TypeError):
        hash(Point(1, 2))
    assert hash(Key("a")) == hash(Key("a"))
    assert {Key("a"), Key("a"), Key("b")} == {Key("a"), Key("b")}


def test_no_instance_dict_and_a_repr_that_names_the_fields() -> None:
    assert not hasattr(Labelled(1, 2, "a"), "__dict__")
    assert repr(Labelled(1, 2, "a")) == "Labelled(x=1, y=2, label='a')"
