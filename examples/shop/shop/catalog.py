"""The product catalog, loaded from ``shop/data/products.json``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from shop.money import DEFAULT_CURRENCY, Money


@dataclass(frozen=True)
class Product:
    """A sellable item identified by its SKU."""

    sku: str
    name: str
    price: Money
    category: str

    @classmethod
    def from_dict(cls, data: dict[str, Any], currency: str = DEFAULT_CURRENCY) -> Product:
        """Build a product from one entry of the catalog data file."""
        return cls(
            sku=data["sku"].upper(),
            name=data["name"],
            price=Money(data["price"], currency),
            category=data["category"],
        )


class UnknownProductError(KeyError):
    """Raised when a SKU is not in the catalog."""


class CatalogFullError(RuntimeError):
    """Raised when adding a product would exceed ``Catalog.MAX_ITEMS``."""


class Catalog:
    """An in-memory collection of products indexed by SKU."""

    MAX_ITEMS = 500

    def __init__(self, products: Iterable[Product] = ()) -> None:
        self._products: dict[str, Product] = {}
        for product in products:
            self.add(product)

    @classmethod
    def from_json(cls, text: str) -> Catalog:
        """Parse a catalog from JSON text (see ``shop/data/products.json``)."""
        data = json.loads(text)
        currency = data.get("currency", DEFAULT_CURRENCY)
        return cls(Product.from_dict(item, currency) for item in data["products"])

    @classmethod
    def load_default(cls) -> Catalog:
        """Load the catalog shipped with the package."""
        data_file = resources.files("shop") / "data" / "products.json"
        return cls.from_json(data_file.read_text(encoding="utf-8"))

    def add(self, product: Product) -> None:
        """Add *product*; SKUs must be unique and the catalog not full."""
        if product.sku in self._products:
            raise ValueError(f"duplicate SKU: {product.sku}")
        if len(self._products) >= self.MAX_ITEMS:
            raise CatalogFullError(f"catalog is limited to {self.MAX_ITEMS} products")
        self._products[product.sku] = product

    def get(self, sku: str) -> Product:
        """Return the product for *sku* (case and surrounding spaces are ignored)."""
        try:
            return self._products[sku.strip().upper()]
        except KeyError:
            raise UnknownProductError(sku) from None

    def __contains__(self, sku: object) -> bool:
        return isinstance(sku, str) and sku.strip().upper() in self._products

    def __len__(self) -> int:
        return len(self._products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self._products.values())

    def categories(self) -> list[str]:
        """All categories that have at least one product, sorted."""
        return sorted({product.category for product in self})

    def by_category(self, category: str) -> list[Product]:
        """Products in *category*, in catalog order."""
        return [product for product in self if product.category == category]

    def search(self, text: str) -> list[Product]:
        """Products whose name contains *text*, ignoring case."""
        needle = text.casefold()
        return [product for product in self if needle in product.name.casefold()]
