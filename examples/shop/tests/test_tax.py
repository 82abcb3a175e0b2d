from decimal import Decimal

import pytest

from shop.money import Money
from shop.tax import REGION_ENV_VAR, UnknownRegionError, compute_tax, default_region, is_exempt, rate_for


@pytest.mark.parametrize(("region", "rate"), [("US-CA", "0.0725"), ("DE", "0.19"), ("US-OR", "0")])
def test_rate_for(region, rate):
    assert rate_for(region) == Decimal(rate)


def test_unknown_region_raises():
    with pytest.raises(UnknownRegionError):
        rate_for("ATLANTIS")


@pytest.mark.parametrize(
    ("category", "region", "exempt"),
    [("groceries", "US-CA", True), ("clothing", "US-CA", False), ("clothing", "US-NY", True)],
)
def test_is_exempt(category, region, exempt):
    assert is_exempt(category, region) is exempt


def test_exempt_lines_are_not_taxed(cart):
    cart.add("BK-001")  # 39.90, taxable
    cart.add("GR-001", 2)  # groceries, exempt in US-CA
    assert compute_tax(cart, "US-CA") == Money("2.89")
    assert compute_tax(cart, "US-OR") == Money.zero()


def test_discount_reduces_taxable_amount_proportionally(cart):
    cart.add("EL-002")  # 129.00, taxable
    cart.add("GR-001")  # 18.00, exempt
    # Nothing is exempt in DE, so the whole discount lowers the taxable amount.
    assert compute_tax(cart, "DE", discount=Money("14.70")) == Money("25.14")  # 132.30 x 0.19
    # In US-CA only the keyboard is taxable; it carries 129/147 of the discount (12.90).
    assert compute_tax(cart, "US-CA", discount=Money("14.70")) == Money("8.42")  # 116.10 x 0.0725


def test_default_region_comes_from_environment(cart, monkeypatch):
    cart.add("BK-002")  # 24.50
    assert default_region() == "US-CA"
    assert compute_tax(cart) == Money("1.78")
    monkeypatch.setenv(REGION_ENV_VAR, "DE")
    assert default_region() == "DE"
    assert compute_tax(cart) == Money("4.66")
