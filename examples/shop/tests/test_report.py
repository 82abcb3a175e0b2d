from decimal import Decimal

import pytest

from shop.cart import Cart
from shop.discounts import make_rule
from shop.money import Money
from shop.report import (
    LINE_WIDTH,
    build_invoice,
    format_amount,
    render_invoice,
    reset_invoice_numbers,
)


@pytest.fixture(autouse=True)
def fresh_invoice_numbers():
    reset_invoice_numbers()


def cart_for(order, catalog) -> Cart:
    cart = Cart(catalog)
    for sku, quantity in order["items"].items():
        cart.add(sku, quantity)
    return cart


def rules_for(order):
    return [make_rule(spec.pop("kind"), **spec) for spec in order["discounts"]]


@pytest.mark.parametrize("order_id", ["A-100", "B-200", "C-300", "D-400", "E-500"])
def test_invoice_figures_match_expected(orders, catalog, order_id):
    order = orders[order_id]
    invoice = build_invoice(cart_for(order, catalog), order["region"], rules_for(order))
    expected = {name: Money(value) for name, value in order["expected"].items()}
    assert invoice.subtotal == expected["subtotal"]
    assert invoice.discount == expected["discount"]
    assert invoice.tax == expected["tax"]
    assert invoice.total == expected["total"]


def test_invoice_numbers_are_sequential(cart):
    cart.add("EL-001")
    assert [build_invoice(cart).number for _ in range(3)] == ["INV-00001", "INV-00002", "INV-00003"]
    reset_invoice_numbers(start=42)
    assert build_invoice(cart).number == "INV-00042"


def test_empty_cart_cannot_be_invoiced(cart):
    with pytest.raises(ValueError, match="empty cart"):
        build_invoice(cart)


@pytest.mark.parametrize(
    ("value", "text"),
    [(Money("1234.5"), "$1,234.50"), (Money(Decimal("-3"), "EUR"), "-€3.00")],
    ids=["thousands-usd", "negative-eur"],
)
def test_format_amount(value, text):
    assert format_amount(value) == text


def test_render_invoice(orders, catalog):
    order = orders["A-100"]
    text = render_invoice(build_invoice(cart_for(order, catalog), order["region"]))
    assert text == "\n".join(
        [
            "Invoice INV-00001",
            "Region: US-CA",
            "-" * LINE_WIDTH,
            "1 x Python Testing Handbook           $39.90",
            "2 x Coffee Beans 1kg*                 $36.00",
            "-" * LINE_WIDTH,
            "Subtotal                              $75.90",
            "Tax (7.25%)                            $2.89",
            "TOTAL                                 $78.79",
            "* tax exempt in this region",
        ]
    )


def test_render_invoice_shows_discount(orders, catalog):
    order = orders["E-500"]
    invoice = build_invoice(cart_for(order, catalog), order["region"], rules_for(order))
    lines = render_invoice(invoice).splitlines()
    assert "Discount                             -$14.15" in lines
    assert lines[-2] == "TOTAL                                $135.77"
    assert all(len(line) <= LINE_WIDTH for line in lines)
