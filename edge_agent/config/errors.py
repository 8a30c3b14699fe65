"""Config problems as a person reads them: one line each, with the key path (a camera named by its id), the
line in the file, what is wrong and the value as it was written; password-like values masked."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from edge_agent.redact import redact_text


def describe_errors(exc: ValidationError, lines: dict[tuple, int] | None = None, prefix: tuple = (),
                    own_cameras: list | None = None, skip_defaults: bool = False) -> list[str]:
    """One line per problem: key path (a camera named by its id), line (when known), what is wrong, the value
    given. `own_cameras`: the cameras as written; with `skip_defaults`, a camera's problem that comes from
    `defaults` is left out (it was reported there)."""
    problems = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        if loc[:1] == ("student_settings",):  # written as student: {precision, ...} (config/__init__.py)
            loc = ("student", *loc[1:])
        if skip_defaults and own_cameras is not None and _from_defaults(loc, own_cameras):
            continue
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None) if lines else None
        at = f" (line {line})" if line else ""
        given = "" if err["type"] == "missing" else f"; got {_shown(_masked(err.get('input')))}"
        problems.append(redact_text(f"{_path(loc, own_cameras)}{at}: {_message(err)}{given}"))
    return problems


def _message(err: Any) -> str:
    """pydantic's message, in the words of a config file: an unknown key is called one (most are typos), and
    a validator's own message comes without pydantic's "Value error, " in front."""
    if err["type"] == "extra_forbidden":
        return "unknown key (misspelt? the example config lists every key)"
    return str(err["msg"]).removeprefix("Value error, ")


def _path(loc: tuple, cameras: list | None) -> str:
    """cameras.1.fps -> cameras[1] (id gate).fps: people know their cameras by id, not position."""
    parts: list[str] = []
    for i, key in enumerate(loc):
        if isinstance(key, int) and i > 0 and loc[i - 1] == "cameras":
            cam = cameras[key] if cameras and key < len(cameras) else None
            ident = cam.get("id") if isinstance(cam, dict) else None
            parts[-1] = f"cameras[{key}]" + (f" (id {ident})" if ident else "")
        else:
            parts.append(str(key))
    return ".".join(parts) or "(top level)"


def _from_defaults(loc: tuple, cameras: list) -> bool:
    """Whether a problem at cameras.N.<key path> is in a key the camera did not write itself."""
    if len(loc) < 3 or loc[0] != "cameras" or not isinstance(loc[1], int) or loc[1] >= len(cameras):
        return False
    node: Any = cameras[loc[1]]
    for key in loc[2:]:
        if not isinstance(node, dict) or key not in node:
            return True
        node = node[key]
    return False


def _shown(value: Any) -> str:
    """A value as the user wrote it (YAML flow style), not as Python prints it; at most 80 characters."""
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    except yaml.YAMLError:
        text = repr(value)
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return text if len(text) <= 80 else text[:77] + "..."


def _masked(value: Any) -> Any:
    """A value echoed in an error, with every password-like key's value masked."""
    if isinstance(value, dict):
        return {k: "***" if any(s in str(k).lower() for s in ("password", "secret", "token")) and v else _masked(v)
                for k, v in value.items()}
    return value
