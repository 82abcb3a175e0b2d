from decimal import Decimal

import pytest

from shop import money
from shop.money import CurrencyMismatchError, Money, round_amount


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1.005", "1.01"), ("2.675", "2.68"), (10, "10.00")],
)
def test_amount_is_rounded_half_up(raw, expected):
    assert Money(raw).amount == Decimal(expected)


def test_unsupported_currency_is_rejected():
    with pytest.raises(ValueError, match="unsupported currency"):
        Money("1.00", "XYZ")


def test_addition_and_subtraction():
    a, b = Money("10.50"), Money("0.75")
    assert a + b == Money("11.25")
    assert a - b == Money("9.75")
    assert -b == Money("-0.75")


def test_mixing_currencies_raises():
    with pytest.raises(CurrencyMismatchError):
        Money("1.00", "USD") + Money("1.00", "EUR")


@pytest.mark.parametrize(
    ("factor", "expected"),
    [(3, "29.97"), ("0.5", "5.00"), (Decimal("0.333"), "3.33")],
)
def test_multiplication_rounds_result(factor, expected):
    assert Money("9.99") * factor == Money(expected)
    assert factor * Money("9.99") == Money(expected)


def test_builtin_sum_works_without_start_value():
    assert sum([Money("1.10"), Money("2.20"), Money("3.30")]) == Money("6.60")


def test_ordering_within_one_currency():
    assert Money("1.00") < Money("1.01")
    assert max(Money("5"), Money("7"), Money("6")) == Money("7")
    with pytest.raises(CurrencyMismatchError):
        assert Money("1", "GBP") < Money("2", "USD")


def test_zero():
    assert Money.zero("EUR").is_zero()
    assert Money.zero("EUR").currency == "EUR"
    assert not Money("0.01").is_zero()
    assert str(Money.zero()) == "0.00 USD"


def test_rounding_follows_module_constant(monkeypatch):
    monkeypatch.setattr(money, "ROUNDING_PLACES", 0)
    assert round_amount("2.5") == Decimal("3")
    assert Money("19.99").amount == Decimal("20")
