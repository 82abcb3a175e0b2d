"""Sales tax per region, read from ``shop/data/tax_rates.json``.

The rates file is read on every call, so edits to it are picked up without
restarting the process. The region used when none is given comes from the
``SHOP_TAX_REGION`` environment variable, falling back to the file's default.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from importlib import resources
from typing import Any

from shop.cart import Cart
from shop.money import Money

REGION_ENV_VAR = "SHOP_TAX_REGION"


class UnknownRegionError(KeyError):
    """Raised for a region that has no entry in the rates file."""


def load_rates() -> dict[str, Any]:
    """Read and parse the tax rates data file."""
    data_file = resources.files("shop") / "data" / "tax_rates.json"
    return json.loads(data_file.read_text(encoding="utf-8"))


def default_region() -> str:
    """The region to use when the caller does not name one."""
    return os.environ.get(REGION_ENV_VAR) or load_rates()["default"]


def _region_info(region: str) -> dict[str, Any]:
    try:
        return load_rates()["regions"][region]
    except KeyError:
        raise UnknownRegionError(region) from None


def rate_for(region: str) -> Decimal:
    """The tax rate of *region* as a fraction, e.g. ``Decimal("0.19")``."""
    return Decimal(_region_info(region)["rate"])


def is_exempt(category: str, region: str) -> bool:
    """True when products of *category* are not taxed in *region*."""
    return category in _region_info(region).get("exempt", [])


def taxable_amount(cart: Cart, region: str, discount: Money | None = None) -> Money:
    """Total of the cart's taxable lines, less their proportional share of *discount*."""
    exempt = set(_region_info(region).get("exempt", []))
    taxable_lines = (line.total for line in cart.lines() if line.product.category not in exempt)
    taxable = sum(taxable_lines, Money.zero(cart.currency))
    subtotal = cart.subtotal()
    if discount is None or subtotal.is_zero():
        return taxable
    return taxable - discount * (taxable.amount / subtotal.amount)


def compute_tax(cart: Cart, region: str | None = None, discount: Money | None = None) -> Money:
    """Tax due on *cart* in *region* (default: :func:`default_region`)."""
    region = region or default_region()
    return taxable_amount(cart, region, discount) * rate_for(region)
