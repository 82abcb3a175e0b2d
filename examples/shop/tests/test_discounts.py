from decimal import Decimal

import pytest

from shop.discounts import (
    RULES,
    BuyXGetY,
    PercentageOff,
    Rule,
    ThresholdOff,
    make_rule,
    register,
    total_discount,
)
from shop.money import Money


def test_rules_register_on_import():
    registered = dict(RULES)
    assert registered == {"percentage": PercentageOff, "buy_x_get_y": BuyXGetY, "threshold": ThresholdOff}
    assert ThresholdOff.kind == "threshold"


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="already registered"):
        register("percentage")(type("Other", (Rule,), {}))
    assert RULES["percentage"] is PercentageOff


def test_percentage_off_whole_cart(cart):
    cart.add("BK-001")  # 39.90
    cart.add("CL-001")  # 15.00
    rule = make_rule("percentage", percent=Decimal("10"))
    assert isinstance(rule, PercentageOff)
    assert rule.apply(cart) == Money("5.49")


def test_percentage_off_one_category(cart):
    cart.add("BK-001")
    cart.add("CL-002")  # 45.00
    assert PercentageOff(percent=20, category="clothing").apply(cart) == Money("9.00")


@pytest.mark.parametrize(("quantity", "expected"), [(2, "0.00"), (3, "6.25"), (7, "12.50")])
def test_buy_two_get_one_free(cart, quantity, expected):
    cart.add("GR-002", quantity)  # 6.25 each
    assert BuyXGetY(sku="GR-002", buy=2).apply(cart) == Money(expected)


@pytest.mark.parametrize(("sku", "expected"), [("EL-002", "10.00"), ("EL-001", "0.00")])
def test_threshold_applies_only_above_minimum(cart, sku, expected):
    cart.add(sku)
    rule = ThresholdOff(minimum=Money("100"), off=Money("10"))
    assert rule.apply(cart) == Money(expected)


def test_make_rule_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown discount rule"):
        make_rule("free_lunch")


def test_total_discount_is_capped(cart):
    cart.add("BK-002")  # 24.50
    rules = [ThresholdOff(minimum=Money("10"), off=Money("20")), PercentageOff(percent=50)]
    assert total_discount(cart, rules) == Money("12.25")
    assert total_discount(cart, rules, max_fraction=Decimal(1)) == Money("24.50")
    assert total_discount(cart, []) == Money.zero()
