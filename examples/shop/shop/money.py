"""Money values: an amount paired with a currency, rounded consistently.

Amounts are stored as :class:`decimal.Decimal` and always rounded half-up to
``ROUNDING_PLACES`` decimal places, so arithmetic never leaves fractions of a
cent behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import total_ordering

ROUNDING_PLACES = 2
DEFAULT_CURRENCY = "USD"
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}

Number = int | float | str | Decimal


class CurrencyMismatchError(ValueError):
    """Raised when two amounts in different currencies are combined."""


def round_amount(value: Number) -> Decimal:
    """Round *value* half-up to ``ROUNDING_PLACES`` decimal places."""
    step = Decimal(1).scaleb(-ROUNDING_PLACES)
    return Decimal(str(value)).quantize(step, rounding=ROUND_HALF_UP)


@total_ordering
@dataclass(frozen=True)
class Money:
    """An immutable amount of money in a single currency."""

    amount: Decimal
    currency: str = DEFAULT_CURRENCY

    def __post_init__(self) -> None:
        if self.currency not in CURRENCY_SYMBOLS:
            raise ValueError(f"unsupported currency: {self.currency!r}")
        object.__setattr__(self, "amount", round_amount(self.amount))

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        """Return an amount of nothing in *currency*."""
        return cls(Decimal(0), currency)

    def _check_compatible(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        other = self._check_compatible(other)
        return Money(self.amount + other.amount, self.currency)

    def __radd__(self, other: object) -> Money:
        # Lets the builtin sum() work without an explicit start value.
        if other == 0:
            return self
        return self.__add__(other)  # type: ignore[arg-type]

    def __sub__(self, other: Money) -> Money:
        other = self._check_compatible(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Number) -> Money:
        if isinstance(factor, Money):
            raise TypeError("cannot multiply two Money values")
        return Money(self.amount * Decimal(str(factor)), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        other = self._check_compatible(other)
        return self.amount < other.amount

    def is_zero(self) -> bool:
        """True when the amount is exactly zero."""
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
