"""A site folder holding exactly the distributions a requirements.txt names and their
dependency closure, taken from the installed ones.

Each distribution's files (``importlib.metadata``) are symlinked into the folder: a
top-level module, or a package with an ``__init__.py``, is linked whole; a folder that
several distributions may share (a namespace package such as ``nvidia``, a
``*.libs`` folder, ``__pycache__``) is linked file by file, so nothing of a
distribution outside the closure leaks in. The
``.dist-info`` folders come along so that ``importlib.metadata`` inside the folder
sees what pip would have installed.
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")


def read_pins(requirements: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file (comments and blanks skipped);
    any other form of line is an error."""
    pins = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"{requirements}: not a pinned requirement: {line!r}"
        pins[match.group(1)] = match.group(2)
    return pins


def closure(pins: dict[str, str]) -> dict[str, metadata.Distribution]:
    """The installed distributions of ``pins`` (at the pinned version) and everything
    they require on this platform, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    queue = []
    for name, version in pins.items():
        dist = metadata.distribution(name)
        assert dist.version.split("+")[0] == version, f"{name}: pinned {version}, installed {dist.version}"
        queue.append(dist)
    while queue:
        dist = queue.pop()
        key = canonicalize_name(dist.metadata["Name"])
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                queue.append(metadata.distribution(req.name))
            except metadata.PackageNotFoundError:
                continue  # pip would install it; without it here, a run that needs it fails
    return found


def _top_level(path) -> str | None:
    parts = Path(path).parts
    return None if not parts or parts[0] == ".." else parts[0]


def _shared(source: Path, top: str) -> bool:
    """Whether the top-level folder ``top`` may hold files of other distributions."""
    if top.endswith(".dist-info") or not source.is_dir():
        return False
    return top == "__pycache__" or not (source / "__init__.py").is_file()


def build_site(pins: dict[str, str], folder: Path) -> list[str]:
    """Fill ``folder`` with the closure of ``pins``; returns the distribution names."""
    dists = closure(pins)
    folder.mkdir(parents=True, exist_ok=True)
    for key, dist in sorted(dists.items()):
        files = dist.files
        assert files is not None, f"{key}: installed without a file list (RECORD); cannot mirror it"
        by_top: dict[str, list] = {}
        for f in files:
            top = _top_level(f)
            if top is not None:
                by_top.setdefault(top, []).append(f)
        for top, entries in by_top.items():
            source = Path(dist.locate_file(top))
            if not source.exists():
                continue
            if not _shared(source, top):
                if not (folder / top).exists():
                    os.symlink(source, folder / top)
                continue
            for f in entries:
                source, target = Path(dist.locate_file(f)), folder / Path(f)
                if source.exists() and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(source, target)
    return sorted(dists)
