"""Discount rules that can be applied to a cart.

Each rule class registers itself in ``RULES`` through the :func:`register`
decorator when this module is imported, so rules can be built by name from
configuration with :func:`make_rule`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shop.cart import Cart
from shop.money import Money

MAX_DISCOUNT_FRACTION = Decimal("0.5")

RULES: dict[str, type[Rule]] = {}


def register(name: str) -> Callable[[type[Rule]], type[Rule]]:
    """Class decorator adding a rule class to ``RULES`` under *name*."""

    def decorator(rule_class: type[Rule]) -> type[Rule]:
        if name in RULES:
            raise ValueError(f"discount rule {name!r} is already registered")
        rule_class.kind = name
        RULES[name] = rule_class
        return rule_class

    return decorator


class Rule:
    """Base class: a rule computes how much it takes off a cart."""

    kind = "abstract"

    def apply(self, cart: Cart) -> Money:
        raise NotImplementedError


@register("percentage")
@dataclass(frozen=True)
class PercentageOff(Rule):
    """*percent* off the whole cart, or off one *category* only."""

    percent: Decimal
    category: str | None = None

    def apply(self, cart: Cart) -> Money:
        base = cart.subtotal() if self.category is None else cart.subtotal_for(self.category)
        return base * (Decimal(str(self.percent)) / 100)


@register("buy_x_get_y")
@dataclass(frozen=True)
class BuyXGetY(Rule):
    """For every *buy* units of *sku*, the next *free* units are free."""

    sku: str
    buy: int
    free: int = 1

    def apply(self, cart: Cart) -> Money:
        groups = cart.quantity(self.sku) // (self.buy + self.free)
        return cart.catalog.get(self.sku).price * (groups * self.free)


@register("threshold")
@dataclass(frozen=True)
class ThresholdOff(Rule):
    """A fixed amount *off* once the subtotal reaches *minimum*."""

    minimum: Money
    off: Money

    def apply(self, cart: Cart) -> Money:
        if cart.subtotal() < self.minimum:
            return Money.zero(cart.currency)
        return self.off


def make_rule(kind: str, **params: Any) -> Rule:
    """Build a registered rule by name, e.g. ``make_rule("percentage", percent=10)``."""
    try:
        rule_class = RULES[kind]
    except KeyError:
        raise ValueError(f"unknown discount rule: {kind!r}") from None
    return rule_class(**params)


def total_discount(cart: Cart, rules: Iterable[Rule], max_fraction: Decimal = MAX_DISCOUNT_FRACTION) -> Money:
    """Sum the discounts of all *rules*, capped at *max_fraction* of the subtotal."""
    total = sum((rule.apply(cart) for rule in rules), Money.zero(cart.currency))
    return min(total, cart.subtotal() * max_fraction)
