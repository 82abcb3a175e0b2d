"""A shopping cart: quantities of catalog products and their subtotal."""

from __future__ import annotations

from dataclasses import dataclass

from shop.catalog import Catalog, Product
from shop.money import DEFAULT_CURRENCY, Money


@dataclass
class LineItem:
    """One product in the cart and how many units of it."""

    product: Product
    quantity: int

    @property
    def total(self) -> Money:
        return self.product.price * self.quantity


class Cart:
    """Products picked from a :class:`Catalog`, keyed by SKU."""

    MAX_QUANTITY_PER_LINE = 99

    def __init__(self, catalog: Catalog, currency: str = DEFAULT_CURRENCY) -> None:
        self.catalog = catalog
        self.currency = currency
        self._lines: dict[str, LineItem] = {}

    def add(self, sku: str, quantity: int = 1) -> LineItem:
        """Add *quantity* units of *sku* and return the updated line."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        product = self.catalog.get(sku)
        if product.price.currency != self.currency:
            raise ValueError(f"{product.sku} is priced in {product.price.currency}, not {self.currency}")
        line = self._lines.get(product.sku)
        new_quantity = quantity + (line.quantity if line else 0)
        if new_quantity > self.MAX_QUANTITY_PER_LINE:
            raise ValueError(f"at most {self.MAX_QUANTITY_PER_LINE} units of {product.sku} per order")
        if line is None:
            line = self._lines[product.sku] = LineItem(product, 0)
        line.quantity = new_quantity
        return line

    def remove(self, sku: str, quantity: int | None = None) -> None:
        """Remove *quantity* units of *sku*, or the whole line when *quantity* is None."""
        key = self.catalog.get(sku).sku
        line = self._lines.get(key)
        if line is None:
            raise KeyError(f"{key} is not in the cart")
        if quantity is None or quantity >= line.quantity:
            del self._lines[key]
        else:
            line.quantity -= quantity

    def quantity(self, sku: str) -> int:
        """How many units of *sku* are in the cart (0 if none)."""
        line = self._lines.get(self.catalog.get(sku).sku)
        return line.quantity if line else 0

    def lines(self) -> list[LineItem]:
        """The cart's lines in the order they were first added."""
        return list(self._lines.values())

    def item_count(self) -> int:
        """Total number of units across all lines."""
        return sum(line.quantity for line in self._lines.values())

    def is_empty(self) -> bool:
        return not self._lines

    def subtotal(self) -> Money:
        """Sum of all line totals, before discounts and tax."""
        return sum((line.total for line in self._lines.values()), Money.zero(self.currency))

    def subtotal_for(self, category: str) -> Money:
        """Sum of the line totals of products in *category*."""
        totals = (line.total for line in self._lines.values() if line.product.category == category)
        return sum(totals, Money.zero(self.currency))

    def clear(self) -> None:
        self._lines.clear()
