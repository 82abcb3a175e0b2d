"""shop: a tiny web-shop domain model (money, catalog, cart, discounts, tax, invoices).

It exists to give tia's README a realistic project to analyse.
"""

from shop.cart import Cart
from shop.catalog import Catalog, Product
from shop.money import Money

__all__ = ["Cart", "Catalog", "Money", "Product"]
__version__ = "0.1.0"
