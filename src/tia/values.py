"""`Value` and `FrozenValue`: the base of tia's small record classes, instead of `dataclasses`.

Every tia command imports most of tia, and `dataclasses` was the dearest part of that:
importing it imports `inspect` (22 ms on the 2-core machine of docs/performance.md), and
each ``@dataclass`` writes its methods with `exec` (about 1 ms a class, 12 ms for the 13
a run that finds nothing to do defined).  A subclass here names its fields in
``__slots__`` (the fields of its bases come first, as a dataclass's do), writes its own
``__init__``, and gets equality and a repr by those fields; instances are smaller and
their attributes quicker to read too, which counts at 100,000 test summaries.
"""

from __future__ import annotations

from typing import Any


class Value:
    """Equal to an instance of the same class with equal fields; unhashable, as a
    dataclass that is not frozen."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(
            name for klass in reversed(cls.__mro__) for name in vars(klass).get("__slots__", ())
        )

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


class FrozenValue(Value):
    """A `Value` that is hashable by its fields, which nothing sets after ``__init__``."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())
