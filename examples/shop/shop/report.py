"""Plain-text invoices for a cart."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from shop import money
from shop.cart import Cart, LineItem
from shop.discounts import Rule, total_discount
from shop.money import Money
from shop.tax import compute_tax, default_region, is_exempt, rate_for

LINE_WIDTH = 44

_invoice_numbers = itertools.count(1)


def next_invoice_number() -> str:
    """Allocate the next invoice number, e.g. ``INV-00001``."""
    return f"INV-{next(_invoice_numbers):05d}"


def reset_invoice_numbers(start: int = 1) -> None:
    """Restart invoice numbering at *start* (used by tests and at year end)."""
    global _invoice_numbers  # noqa: PLW0603
    _invoice_numbers = itertools.count(start)


@dataclass(frozen=True)
class Invoice:
    """The figures of one order, frozen at the time it was invoiced."""

    number: str
    region: str
    lines: tuple[LineItem, ...]
    subtotal: Money
    discount: Money
    tax: Money

    @property
    def total(self) -> Money:
        return self.subtotal - self.discount + self.tax


def build_invoice(cart: Cart, region: str | None = None, rules: Iterable[Rule] = ()) -> Invoice:
    """Compute discount and tax for *cart* and number the resulting invoice."""
    if cart.is_empty():
        raise ValueError("cannot invoice an empty cart")
    region = region or default_region()
    discount = total_discount(cart, rules)
    return Invoice(
        number=next_invoice_number(),
        region=region,
        lines=tuple(cart.lines()),
        subtotal=cart.subtotal(),
        discount=discount,
        tax=compute_tax(cart, region, discount),
    )


def format_amount(value: Money) -> str:
    """Format *value* with its currency symbol and thousands separators."""
    symbol = money.CURRENCY_SYMBOLS[value.currency]
    sign = "-" if value.amount < 0 else ""
    return f"{sign}{symbol}{abs(value.amount):,.{money.ROUNDING_PLACES}f}"


def _row(label: str, value: str) -> str:
    label = label[: LINE_WIDTH - len(value) - 1]
    return f"{label}{value:>{LINE_WIDTH - len(label)}}"


def render_invoice(invoice: Invoice) -> str:
    """Lay out *invoice* as fixed-width text; tax-exempt lines are marked with ``*``."""
    rows = [f"Invoice {invoice.number}", f"Region: {invoice.region}", "-" * LINE_WIDTH]
    any_exempt = False
    for line in invoice.lines:
        exempt = is_exempt(line.product.category, invoice.region)
        any_exempt = any_exempt or exempt
        label = f"{line.quantity} x {line.product.name}{'*' if exempt else ''}"
        rows.append(_row(label, format_amount(line.total)))
    rows.append("-" * LINE_WIDTH)
    rows.append(_row("Subtotal", format_amount(invoice.subtotal)))
    if not invoice.discount.is_zero():
        rows.append(_row("Discount", format_amount(-invoice.discount)))
    rate = rate_for(invoice.region) * 100
    rows.append(_row(f"Tax ({rate.normalize():f}%)", format_amount(invoice.tax)))
    rows.append(_row("TOTAL", format_amount(invoice.total)))
    if any_exempt:
        rows.append("* tax exempt in this region")
    return "\n".join(rows)
