import pytest

from shop.cart import Cart
from shop.catalog import UnknownProductError
from shop.money import Money


class TestAdd:
    def test_add_creates_line(self, cart):
        line = cart.add("BK-002")
        assert line.quantity == 1
        assert line.total == Money("24.50")
        assert cart.quantity("bk-002") == 1

    def test_add_same_sku_accumulates(self, cart):
        cart.add("EL-001", 2)
        cart.add("el-001", 3)
        assert cart.quantity("EL-001") == 5
        assert len(cart.lines()) == 1

    @pytest.mark.parametrize("quantity", [0, -2])
    def test_add_rejects_non_positive_quantity(self, cart, quantity):
        with pytest.raises(ValueError, match="positive"):
            cart.add("EL-001", quantity)
        assert cart.is_empty()

    def test_add_respects_line_limit(self, cart):
        cart.add("GR-002", Cart.MAX_QUANTITY_PER_LINE)
        with pytest.raises(ValueError, match="at most 99"):
            cart.add("GR-002")

    def test_add_unknown_sku(self, cart):
        with pytest.raises(UnknownProductError):
            cart.add("ZZ-000")


class TestRemove:
    def test_remove_some_units(self, cart):
        cart.add("CL-001", 4)
        cart.remove("CL-001", 3)
        assert cart.quantity("CL-001") == 1

    def test_remove_whole_line(self, cart):
        cart.add("CL-001", 4)
        cart.add("CL-002")
        cart.remove("CL-001")
        assert [line.product.sku for line in cart.lines()] == ["CL-002"]

    def test_remove_missing_line_raises(self, cart):
        with pytest.raises(KeyError, match="not in the cart"):
            cart.remove("BK-001")


def test_empty_cart_subtotal_is_zero(cart):
    assert cart.is_empty()
    assert cart.subtotal() == Money.zero()
    assert cart.item_count() == 0


def test_subtotal_sums_lines(cart):
    cart.add("BK-001")  # 39.90
    cart.add("EL-001", 3)  # 3 x 9.99
    assert cart.subtotal() == Money("69.87")
    assert cart.item_count() == 4
    cart.clear()
    assert cart.is_empty()


def test_subtotal_for_category(cart):
    cart.add("GR-001", 2)
    cart.add("GR-002")
    cart.add("EL-002")
    assert cart.subtotal_for("groceries") == Money("42.25")
    assert cart.subtotal_for("books") == Money.zero()
