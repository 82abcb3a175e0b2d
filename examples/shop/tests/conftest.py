"""Shared fixtures for the shop test suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shop.cart import Cart
from shop.catalog import Catalog
from shop.tax import REGION_ENV_VAR

DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def deterministic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's SHOP_TAX_REGION from leaking into the tests."""
    monkeypatch.delenv(REGION_ENV_VAR, raising=False)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The catalog shipped with the package, loaded once per session."""
    return Catalog.load_default()


@pytest.fixture
def cart(catalog: Catalog) -> Cart:
    """An empty cart backed by the default catalog."""
    return Cart(catalog)


@pytest.fixture
def orders() -> dict[str, dict[str, Any]]:
    """Sample orders from tests/data/orders.json, keyed by order id."""
    records = json.loads((DATA_DIR / "orders.json").read_text(encoding="utf-8"))
    return {record["id"]: record for record in records}
