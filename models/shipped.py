"""Files of config/ wherever FrameSieve runs from: the source tree, or an installed wheel, which carries
them as the package `framesieve_config`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_CONFIG = Path(__file__).resolve().parent.parent / "config"


def shipped_config(name: str) -> Path:
    """The path of config/NAME (e.g. "pricing.yaml"); FileNotFoundError naming both places looked in."""
    source = SOURCE_CONFIG / name
    if source.is_file():
        return source
    try:
        installed = resources.files("framesieve_config") / name
    except ModuleNotFoundError:
        installed = None
    if installed is not None and installed.is_file():
        return Path(str(installed))
    raise FileNotFoundError(f"config/{name} is neither in the source tree ({SOURCE_CONFIG}) nor in the installed "
                            "package framesieve_config; reinstall FrameSieve from its wheel (./dev.sh wheel)")
