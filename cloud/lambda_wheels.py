"""The third-party packages a Lambda zip carries (the dashboard's cost model: pydantic, PyYAML and their
requirements), built for the Lambda's platform: copied from this environment when it is that platform, else
wheels from a given folder or the cache, downloaded with pip when missing."""

from __future__ import annotations

import functools
import platform as host
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from cloud.exceptions import PackagingError

# pydantic's requirements, less its extras, and PyYAML, vendored at the versions installed here (pip chose them
# within setup's ranges).
COST_MODEL_DISTS = ("pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection",
                    "PyYAML")


class WheelsUnavailable(PackagingError):
    """The dashboard's third-party wheels for the Lambda's platform are neither given, cached nor downloadable."""


@dataclass(frozen=True)
class LambdaPlatform:
    """The platform a Lambda zip's compiled packages are built for: CPython `python` ("3.12") on Linux `arch`
    (Lambda's names: "arm64" or "x86_64"), wheels tagged manylinux2014 (glibc 2.17, which every Lambda Python
    runtime has)."""

    python: str
    arch: str

    _MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.[0-9]{1,2}", self.python):
            raise PackagingError(f"Lambda Python version {self.python!r} is not understood; expected e.g. 3.12")
        if self.arch not in self._MACHINE:
            raise PackagingError(f"Lambda architecture {self.arch!r} is not one of {', '.join(self._MACHINE)}")

    @property
    def machine(self) -> str:
        return self._MACHINE[self.arch]

    @property
    def pip_platform(self) -> str:
        return f"manylinux2014_{self.machine}"

    @property
    def cp(self) -> str:
        return "cp" + self.python.replace(".", "")

    def __str__(self) -> str:
        return f"python{self.python} {self.arch} ({self.cp} {self.pip_platform})"

    @classmethod
    def running(cls) -> LambdaPlatform:
        """This interpreter's platform (what the installed compiled packages were built for)."""
        machine = host.machine()
        arch = {"aarch64": "arm64"}.get(machine, machine)
        return cls(f"{sys.version_info[0]}.{sys.version_info[1]}", arch)

    def is_running(self) -> bool:
        """Whether this interpreter can run what is built for this platform: its installed packages fit."""
        return sys.platform == "linux" and self == LambdaPlatform.running() and \
            sys.implementation.name == "cpython"

    @classmethod
    def from_template(cls, template: dict[str, Any], source: str = "the template") -> LambdaPlatform:
        """The one platform every AWS::Lambda::Function in a CloudFormation template runs on (Runtime and
        Architectures); PackagingError when they differ or one is not a Python zip function."""
        found: dict[str, LambdaPlatform] = {}
        for name, res in (template.get("Resources") or {}).items():
            if res.get("Type") != "AWS::Lambda::Function":
                continue
            props = res.get("Properties") or {}
            runtime, archs = props.get("Runtime"), props.get("Architectures") or ["x86_64"]
            m = re.fullmatch(r"python(3\.[0-9]+)", str(runtime))
            if not m or len(archs) != 1:
                raise PackagingError(f"{source}: function {name} has Runtime {runtime!r} and Architectures {archs}; "
                                     "the dashboard's zip is built for one python3.N runtime on one architecture")
            found[name] = cls(m[1], str(archs[0]))
        if not found:
            raise PackagingError(f"{source} has no AWS::Lambda::Function to take the zip's platform from")
        if len(set(found.values())) > 1:
            raise PackagingError(f"{source}: its functions run on different platforms "
                                 f"({', '.join(f'{k}: {v}' for k, v in sorted(found.items()))}); one zip serves "
                                 "them all, so give them the same Runtime and Architectures")
        return next(iter(found.values()))


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "_", dist).lower()


def cost_model_pins() -> dict[str, str]:
    """The cost model's distributions at the versions installed here: {name: version}."""
    pins = {}
    for dist in COST_MODEL_DISTS:
        try:
            pins[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError as exc:
            raise PackagingError(f"{dist} is not installed here; the dashboard's zip vendors the cost model's "
                                 "packages at the versions installed with FrameSieve: pip install -e .") from exc
    return pins


def installed_entries(pins: dict[str, str]) -> list[tuple[str, Callable[[], bytes]]]:
    """The installed files of each distribution (its packages, modules and .dist-info), as this environment has
    them: the zip's third-party part when the target platform is this interpreter's."""
    out = []
    for dist in pins:
        d = metadata.distribution(dist)
        for rel in d.files or ():
            arc = rel.as_posix()
            if arc.startswith(("..", "/")) or "__pycache__" in rel.parts or arc.endswith(".pyc"):
                continue  # console scripts, bytecode
            src = Path(str(d.locate_file(rel)))
            if src.is_file():
                out.append((arc, src.read_bytes))
    return out


def _wheel_tags(filename: str) -> tuple[str, str, set[str], set[str], set[str]] | None:
    """(distribution, version, python tags, ABI tags, platform tags) of a wheel's file name."""
    parts = filename[:-len(".whl")].split("-") if filename.endswith(".whl") else []
    if len(parts) not in (5, 6):
        return None
    pys, abis, plats = (set(p.split(".")) for p in parts[-3:])
    return _norm(parts[0]), parts[1], pys, abis, plats


def _wheel_fits(filename: str, platform: LambdaPlatform) -> bool:
    """Whether a wheel (by its file name's tags) installs on `platform`: pure Python 3, or CPython of that version
    (or the stable ABI of an older one) for manylinux2014 / manylinux_2_17 or older on its machine."""
    tags = _wheel_tags(filename)
    if tags is None:
        return False
    _, _, pys, abis, plats = tags
    if plats == {"any"}:
        return any(p.startswith("py3") or p == platform.cp for p in pys)
    minor = int(platform.python.split(".")[1])
    glibc_ok = any(p == f"manylinux2014_{platform.machine}" or
                   bool((m := re.fullmatch(rf"manylinux_2_([0-9]+)_{platform.machine}", p)) and int(m[1]) <= 17)
                   for p in plats)
    exact = platform.cp in pys and platform.cp in abis
    stable = "abi3" in abis and any(re.fullmatch(r"cp3[0-9]+", p) and int(p[3:]) <= minor for p in pys)
    return glibc_ok and (exact or stable)


def _find_wheel(folder: Path, dist: str, version: str, platform: LambdaPlatform) -> Path | None:
    if not folder.is_dir():
        return None
    for whl in sorted(folder.glob("*.whl")):
        tags = _wheel_tags(whl.name)
        if tags and tags[:2] == (_norm(dist), version) and _wheel_fits(whl.name, platform):
            return whl
    return None


def dist_top_levels(pins: dict[str, str]) -> tuple[str, ...]:
    """The top-level modules the installed distributions provide (pydantic_core, yaml, _yaml, typing_extensions...)."""
    names = set()
    for dist in pins:
        for rel in metadata.distribution(dist).files or ():
            first = rel.parts[0]
            if first.startswith("..") or first.endswith((".dist-info", ".data")) or first == "__pycache__":
                continue
            names.add(first.split(".")[0] if len(rel.parts) == 1 else first)
    return tuple(sorted(names))


def wheels_cache(platform: LambdaPlatform) -> Path:
    """Where downloaded wheels for `platform` are kept ($FRAMESIEVE_CACHE or ~/.cache/framesieve)."""
    from models.paths import cache_dir

    return cache_dir() / "lambda-wheels" / f"{platform.cp}-{platform.pip_platform}"


def _pip_download_cmd(pins: dict[str, str], platform: LambdaPlatform, dest: Path | str) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
            "--platform", platform.pip_platform, "--python-version", platform.python, "--implementation", "cp",
            "--dest", str(dest), *(f"{d}=={v}" for d, v in pins.items())]


def lambda_wheels(pins: dict[str, str], platform: LambdaPlatform, wheels_dir: Path | None = None,
                  out: Callable[[str], None] | None = None) -> tuple[list[Path], int]:
    """One wheel per pinned distribution for `platform`: from `wheels_dir` when given (nothing downloaded), else
    from the cache, downloading the missing ones with pip into it. (The wheels, how many were downloaded.)"""
    folder = wheels_dir or wheels_cache(platform)
    missing = {d: v for d, v in pins.items() if not _find_wheel(folder, d, v, platform)}
    fetch = "python " + " ".join(_pip_download_cmd(pins, platform, "DIR")[1:])
    if missing and wheels_dir is not None:
        raise WheelsUnavailable(
            f"--dashboard-wheels {wheels_dir} has no wheel for {platform} of "
            f"{', '.join(f'{d}=={v}' for d, v in missing.items())}; fetch them there on a machine with access to "
            f"the package index: {fetch.replace('DIR', str(wheels_dir))}")
    if missing:
        if out:
            out(f"downloading {len(missing)} wheel(s) for the dashboard's cost model ({platform}) into {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(_pip_download_cmd(missing, platform, folder), capture_output=True, text=True,
                                  timeout=300)
            detail = (proc.stderr.strip().splitlines() or [f"pip exited {proc.returncode}"])[-1]
        except subprocess.TimeoutExpired:
            proc, detail = None, "pip download took over 300 s"
        still = {d: v for d, v in missing.items() if not _find_wheel(folder, d, v, platform)}
        if proc is None or proc.returncode != 0 or still:
            raise WheelsUnavailable(
                f"the dashboard's Cost page needs {', '.join(f'{d}=={v}' for d, v in (still or missing).items())} "
                f"built for the Lambda ({platform}), and pip could not download them ({detail}). Retry with access "
                f"to the package index, or fetch them on a machine that has it ("
                f"{fetch}) and deploy with --dashboard-wheels DIR; the dashboard is not deployed without them, "
                "so its Cost page never answers 501")
    wheels = [_find_wheel(folder, d, v, platform) for d, v in pins.items()]
    return [w for w in wheels if w is not None], len(missing)


def wheel_entries(wheel: Path) -> list[tuple[str, Callable[[], bytes]]]:
    """A wheel's files as pip installs them into a target folder: everything but its .data scripts and headers
    (its purelib and platlib go to the top)."""
    out: list[tuple[str, Callable[[], bytes]]] = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename
            first, _, rest = name.partition("/")
            if first.endswith(".data"):
                kind, _, rest = rest.partition("/")
                if kind not in ("purelib", "platlib"):
                    continue
                name = rest
            out.append((name, functools.partial(bytes, zf.read(info))))
    return out
