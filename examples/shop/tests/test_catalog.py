import pytest

from shop.catalog import Catalog, CatalogFullError, Product, UnknownProductError
from shop.money import Money


def make_product(sku: str, price: str = "1.00", category: str = "misc") -> Product:
    return Product(sku=sku, name=f"Product {sku}", price=Money(price), category=category)


def test_default_catalog_has_all_products(catalog):
    assert len(catalog) == 8
    assert "EL-002" in catalog
    assert "XX-999" not in catalog


def test_get_returns_product_with_price(catalog):
    product = catalog.get("BK-001")
    assert product.name == "Python Testing Handbook"
    assert product.price == Money("39.90")
    assert product.category == "books"


@pytest.mark.parametrize("sku", [" bk-001", "Bk-001 "], ids=["lower-leading-space", "mixed-trailing-space"])
def test_get_normalises_sku(catalog, sku):
    assert catalog.get(sku).sku == "BK-001"


def test_unknown_sku_raises(catalog):
    with pytest.raises(UnknownProductError):
        catalog.get("NOPE-1")


def test_categories_and_by_category(catalog):
    assert catalog.categories() == ["books", "clothing", "electronics", "groceries"]
    assert [p.sku for p in catalog.by_category("groceries")] == ["GR-001", "GR-002"]


def test_search_ignores_case(catalog):
    assert [p.sku for p in catalog.search("KEYboard")] == ["EL-002"]
    assert catalog.search("no such thing") == []


def test_from_json_applies_currency():
    text = '{"currency": "EUR", "products": [{"sku": "x-1", "name": "X", "price": "2.5", "category": "c"}]}'
    product = Catalog.from_json(text).get("X-1")
    assert product.price == Money("2.50", "EUR")


def test_duplicate_sku_is_rejected():
    with pytest.raises(ValueError, match="duplicate SKU"):
        Catalog([make_product("A-1"), make_product("A-1")])


def test_max_items_is_enforced(monkeypatch):
    monkeypatch.setattr(Catalog, "MAX_ITEMS", 2)
    catalog = Catalog([make_product("A-1"), make_product("A-2")])
    with pytest.raises(CatalogFullError):
        catalog.add(make_product("A-3"))
