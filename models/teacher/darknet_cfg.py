"""Darknet .cfg files: sections and keys as written, with errors that name the section and its line. Only
the section types YOLOv3-tiny uses are accepted (darknet.py converts them)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from models.exceptions import ModelError

SUPPORTED_SECTIONS = ("net", "convolutional", "maxpool", "yolo", "route", "upsample")
REFETCH_HINT = "delete it and run `edge-agent models fetch` to fetch it again"

_SECTION_RE = re.compile(r"^\[([A-Za-z_]+)\]$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_cfg(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Sections of a Darknet .cfg in file order.

    Each dict holds the section's keys as strings plus "_type" (the section name) and "_line" (its
    1-based line number, for later error messages); the underscore keeps them apart from cfg keys.
    """
    path = Path(path)
    sections: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                match = _SECTION_RE.match(line)
                if match is None:
                    raise ModelError(f"{path}, line {lineno}: malformed section header {line!r}")
                kind = match.group(1)
                if kind not in SUPPORTED_SECTIONS:
                    raise ModelError(
                        f"{path}, line {lineno}: unknown section [{kind}]; FrameSieve's Darknet converter "
                        f"supports {', '.join(f'[{s}]' for s in SUPPORTED_SECTIONS)}"
                    )
                sections.append({"_type": kind, "_line": lineno})
                continue
            key, sep, value = (part.strip() for part in line.partition("="))
            if not sep or not _KEY_RE.match(key) or not value:
                raise ModelError(f"{path}, line {lineno}: malformed line {line!r}; expected key=value")
            if not sections:
                raise ModelError(f"{path}, line {lineno}: {key}= appears before any [section]")
            sections[-1][key] = value
    if not sections or sections[0]["_type"] != "net":
        raise ModelError(f"{path}: a Darknet cfg must start with a [net] section")
    return sections


def where(section: dict[str, Any]) -> str:
    return f"[{section['_type']}] at line {section['_line']}"


def int_value(section: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in section:
        if default is None:
            raise ModelError(f"{where(section)} lacks required key {key}=")
        return default
    try:
        return int(section[key])
    except ValueError:
        raise ModelError(f"{where(section)}: {key}={section[key]!r} is not an integer") from None


def int_list(section: dict[str, Any], key: str) -> list[int]:
    if key not in section:
        raise ModelError(f"{where(section)} lacks required key {key}=")
    try:
        return [int(v) for v in section[key].split(",") if v.strip()]
    except ValueError:
        raise ModelError(f"{where(section)}: {key}={section[key]!r} is not a list of integers") from None
