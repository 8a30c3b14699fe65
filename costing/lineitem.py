"""One traceable figure of a bill: quantity x unit price = $/month, with where the price comes from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GB = 1024**3  # AWS bills storage, transfer and data processed per binary gigabyte


@dataclass(frozen=True)
class LineItem:
    """One traceable figure: quantity (in the price's unit) x unit price = $/month, for the whole fleet."""

    name: str
    quantity: float
    unit: str
    unit_price_usd: float
    usd_per_month: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "quantity": self.quantity, "unit": self.unit,
                "unit_price_usd": self.unit_price_usd, "usd_per_month": self.usd_per_month, "source": self.source}


class Bill:
    """A bill made of line items (mixed into the dataclasses that carry `items`): its total per month."""

    items: list[LineItem]

    @property
    def usd_per_month(self) -> float:
        return sum(i.usd_per_month for i in self.items)


class FleetBill(Bill):
    """A fleet's bill: its total per month and per camera-month."""

    cameras: int

    @property
    def usd_per_camera_month(self) -> float:
        return self.usd_per_month / self.cameras


def item(name: str, quantity: float, price: Any, unit: str | None = None, unit_price: float | None = None) -> LineItem:
    """A LineItem priced by a `Price` (or a given unit price, for derived units such as gateway-months)."""
    usd = price.usd if unit_price is None else unit_price
    return LineItem(name, quantity, unit or price.unit, usd, quantity * usd, price.source)


def ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 2.0000000001 from float noise is still 2
