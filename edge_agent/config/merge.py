"""Merging config mappings: camera defaults under each camera, a device shadow's state over the file."""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: Any, override: Any) -> Any:
    """`override` over `base`, recursively for mappings; a None in `override` removes the key (as a
    device shadow's null does)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def overlay(base: Any, override: Any) -> Any:
    """`override` over `base`, recursively for mappings (a camera's keys over the config's camera defaults)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = overlay(base.get(key), value) if key in base else value
        return out
    return copy.deepcopy(override)
