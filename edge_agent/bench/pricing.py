"""The price file's models and loader live in `costing.pricing` (the cloud's planner reads them too)."""

from costing.pricing import DEFAULT_PRICING, EXPECTED_UNITS, Pricing, PricingError, load_pricing, merge

__all__ = ["DEFAULT_PRICING", "EXPECTED_UNITS", "Pricing", "PricingError", "load_pricing", "merge"]
