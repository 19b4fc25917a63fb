"""What an exported submission needs: the fmuia modules its entry point reaches, and
the third-party distributions those modules import, pinned to the installed versions.

The walk reads the source (``ast``), it does not import anything. From the entry
file (``model.py``) it follows every import of an fmuia module, wherever it stands
(an import inside a function still runs when that function does). A third-party
import is *required* when it runs on import of a shipped module: at module or class
level, outside ``if TYPE_CHECKING:`` and outside a ``try`` that catches
``ImportError``. An import inside a function or behind such a ``try`` is an optional
feature (DICOM input, onnxruntime, pretrained-weight downloads) and is listed as
such, not required.

Top-level module names map to distributions with
``importlib.metadata.packages_distributions()``; each distribution is pinned to its
installed version without a local label (``2.14.1+cu130`` -> ``2.14.1``: the local
label names a build index, not a PyPI release).
"""
from __future__ import annotations

import ast
import importlib.metadata as metadata
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fmuia.errors import ConfigError

PACKAGE = "fmuia"

# Always pinned, imported or not: torchvision must match torch's build (timm imports it).
ALWAYS = ("torch", "torchvision")


@dataclass
class ImportScan:
    """``modules``: fmuia module name -> source file; ``required``/``optional``:
    third-party top-level module name -> the files importing it."""

    modules: dict[str, Path] = field(default_factory=dict)
    required: dict[str, set[str]] = field(default_factory=dict)
    optional: dict[str, set[str]] = field(default_factory=dict)


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = []
        if handler.type is None:
            return True
        for t in handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]:
            names.append(t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else "")
        if {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"} & set(names):
            return True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module: str, is_package: bool):
    """Yield ``(absolute module name, imported names or None, runs on import)``."""

    def visit(node: ast.AST, on_import: bool):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            on_import = False
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from visit(child, on_import)
            return
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for child in node.body:
                yield from visit(child, False)
            for child in node.handlers + node.orelse + node.finalbody:
                yield from visit(child, on_import)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, on_import
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name, [a.name for a in node.names], on_import
        for child in ast.iter_child_nodes(node):
            yield from visit(child, on_import)

    for statement in tree.body:
        yield from visit(statement, True)


def _source_of(name: str, package_root: Path) -> Path | None:
    """The source file of fmuia module ``name`` (``package_root`` is the fmuia folder)."""
    rel = name.split(".")[1:]
    folder = package_root.joinpath(*rel)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    file = package_root.joinpath(*rel[:-1], rel[-1] + ".py") if rel else None
    return file if file is not None and file.is_file() else None


def scan_imports(entry: Path, package_root: Path) -> ImportScan:
    """Walk the imports of ``entry`` and of every fmuia module it reaches."""
    scan = ImportScan()
    queue: list[tuple[str, Path]] = [("__main__", Path(entry))]
    seen: set[str] = set()

    def reach(name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            prefix = ".".join(parts[:i])
            if prefix in seen:
                continue
            source = _source_of(prefix, package_root)
            if source is None:
                return  # an attribute of the module above, not a module
            seen.add(prefix)
            queue.append((prefix, source))

    while queue:
        module, path = queue.pop()
        if module != "__main__":
            scan.modules[module] = path
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError) as exc:
            raise ConfigError(f"{path}: cannot read the source to list its imports ({exc})") from None
        is_package = path.name == "__init__.py"
        for name, names, on_import in _imports(tree, module, is_package):
            top = name.split(".")[0]
            if top == PACKAGE:
                reach(name)
                for sub in names or []:
                    reach(f"{name}.{sub}")
            elif top and top != "__future__" and top not in sys.stdlib_module_names:
                where = str(path.relative_to(package_root.parent)) if module != "__main__" else path.name
                (scan.required if on_import else scan.optional).setdefault(top, set()).add(where)
    for top in scan.required:
        scan.optional.pop(top, None)
    return scan


def _pin(distribution: str) -> str:
    version = metadata.version(distribution).split("+", 1)[0]
    return f"{metadata.metadata(distribution)['Name']}=={version}"


def distributions_for(modules: "dict[str, set[str]]") -> dict[str, list[str]]:
    """Top-level module name -> the installed distributions providing it (usually one;
    all are kept when several ship the same module). A module no installed
    distribution provides is a ``ConfigError`` naming the importing files."""
    provided = metadata.packages_distributions()
    found: dict[str, list[str]] = {}
    for top, files in sorted(modules.items()):
        dists = sorted(set(provided.get(top, [])))
        if not dists:
            raise ConfigError(f"{', '.join(sorted(files))}: imports {top!r}, which no installed distribution provides "
                              "(install it before exporting)")
        found[top] = dists
    return found


def requirements_text(scan: ImportScan, runtimes: "tuple[str, ...]" = ()) -> str:
    """The ``requirements.txt`` of a submission whose imports are ``scan``, plus the
    top-level modules ``runtimes`` (the inference backend it runs, imported only where
    that backend runs, so the scan lists it as optional)."""
    required = {**scan.required, **{top: {"the chosen backend"} for top in runtimes}}
    dists = {d for found in distributions_for(required).values() for d in found}
    for name in ALWAYS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            raise ConfigError(f"{name} is not installed: the submission pins the installed torch and torchvision") from None
        dists.add(name)
    pins = sorted((_pin(d) for d in dists), key=str.lower)
    optional = ", ".join(sorted(set(scan.optional) - set(runtimes), key=str.lower)) or "none"
    header = [
        "# Generated by `fmuia export submission` from the imports of model.py and of the fmuia",
        "# modules shipped beside it, pinned to the versions of the exporting environment.",
        "# torch from PyPI ships its CUDA runtime on Linux x86_64.",
        f"# Imported only by optional features, not installed: {optional}.",
    ]
    return "\n".join(header + pins) + "\n"
