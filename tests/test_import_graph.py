"""The package's import graph has no cycles, and prediction stays light.

Two graphs over the modules of ``src/fmuia``, both read with ``ast``:

* the import-time graph (``import_graph()``): what runs when a module is imported, so
  imports inside functions and under ``if TYPE_CHECKING:`` are left out;
* the full graph (``import_graph(deferred=True)``): every import statement wherever it
  stands, inside functions included, since a function-level import is a dependency
  all the same. Only ``if TYPE_CHECKING:`` blocks are left out: they never run (they
  name types for the type checker). No cycle of any kind is allowed in it, and the
  layering holds in it.

Edges: ``import a.b.c`` is an edge to ``a.b.c``; ``from a.b import y`` is an edge to the
submodule ``a.b.y`` when there is one, else to ``a.b`` (the module, or the package
``__init__`` that defines or re-exports ``y``). Importing ``a.b.c`` also runs the packages
``a`` and ``a.b``, so those are edges too, unless the importer lives inside them (the
package is then already being imported). A package re-exporting its submodules' names
is therefore a dependency of whoever imports those names from the package: a module
that the package's ``__init__`` itself needs imports from the defining submodule.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted((root / "fmuia").rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        modules[name] = path
    return modules


def _import_nodes(body: list[ast.stmt], deferred: bool):
    """The import statements of ``body`` that count: never those under ``if
    TYPE_CHECKING:``, and those inside functions only when ``deferred``."""
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_nodes(node.orelse, deferred)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not deferred:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _import_nodes([child], deferred)
            elif isinstance(child, ast.ExceptHandler):
                yield from _import_nodes(child.body, deferred)
            elif isinstance(child, ast.match_case):
                yield from _import_nodes(child.body, deferred)


def _imports(tree: ast.Module, module: str, is_package: bool, modules: dict[str, Path], deferred: bool) -> set[str]:
    named: set[str] = set()  # what the statements name
    packages: set[str] = set()  # the packages above them, run on the way
    for node in _import_nodes(tree.body, deferred):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
            named.update(bases)
        else:
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                package = parts if is_package else parts[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            bases = [base]
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                named.add(submodule if submodule in modules else base)
        for base in bases:
            parts = base.split(".")
            packages.update(".".join(parts[:k]) for k in range(1, len(parts)))
    packages = {p for p in packages if p != module and not module.startswith(p + ".")}
    return {name for name in named | packages if name in modules}


def import_graph(root: Path = SRC, deferred: bool = False) -> dict[str, set[str]]:
    """Module -> the modules it imports (see the module notes for ``deferred``)."""
    modules = _modules(root)
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", modules, deferred)
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, and the modules
    that import themselves (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


# The layering of docs/architecture.md's package table: the packages a package's modules may
# import, inside functions too (besides its own modules and the shared leaves below).
SHARED = {"fmuia", "errors", "_version", "imagenet"}
LAYERS = {
    "tasks": set(),
    "io": set(),
    "metrics": {"tasks"},
    "config": {"io", "tasks"},  # the schema, torch-free: the kinds register their heads from its catalogue
    "kinds": {"tasks", "io", "metrics", "config"},
    "runtime": {"config"},
    "data": {"tasks", "io", "kinds", "config"},
    "model": {"tasks", "io", "kinds", "config", "runtime"},
    "evaluate": {"tasks", "io", "kinds", "metrics", "data"},
    "predict": {"tasks", "io", "kinds", "config", "data", "model", "runtime"},
    "train": {"tasks", "io", "kinds", "metrics", "config", "runtime", "data", "model", "evaluate"},
    "synthetic": {"tasks", "io", "kinds", "data"},
    "pretrain": {"tasks", "io", "kinds", "metrics", "config", "runtime", "data", "model", "evaluate", "train"},
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fmuia"


def test_packages_import_only_the_layers_below_them():
    wrong = []
    for module, targets in import_graph(deferred=True).items():  # function-level imports included
        allowed = LAYERS.get(_package(module))
        if allowed is None:  # the command line, the demo, the package itself: the top
            continue
        for target in sorted(targets):
            package = _package(target)
            if package != _package(module) and package not in allowed | SHARED:
                wrong.append(f"{module} imports {target}")
    assert wrong == [], "imports against the layering: " + "; ".join(wrong)


def test_the_graph_sees_the_package_edges():
    graph = import_graph()
    assert "fmuia.model.network" in graph["fmuia.model.checkpoint"]
    # the package names its submodules' classes on first use: an edge of the full graph only
    assert "fmuia.model.network" not in graph["fmuia.model"]
    assert "fmuia.model.network" in import_graph(deferred=True)["fmuia.model"]
    assert "fmuia.kinds" in graph["fmuia.data.layout"]
    # a function-local import is not an import-time edge, but an edge of the full graph
    assert "fmuia.predict.api" not in graph["fmuia"]
    assert "fmuia.predict.api" in import_graph(deferred=True)["fmuia"]


def _graph_of(tmp_path: Path, files: dict[str, str], deferred: bool = True) -> dict[str, set[str]]:
    for name, text in files.items():
        path = tmp_path / "fmuia" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return import_graph(tmp_path, deferred)


def test_the_full_graph_resolves_names_to_modules_or_packages(tmp_path):
    graph = _graph_of(tmp_path, {
        "__init__.py": "",
        "pkg/__init__.py": "from fmuia.pkg.impl import Thing\n",
        "pkg/impl.py": "def f():\n    from fmuia import user\n",
        "pkg/other.py": "from fmuia.pkg import impl\nfrom . import Thing\n",
        "user.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from fmuia.pkg.other import X\n"
            "def g():\n    try:\n        from fmuia.pkg import Thing\n    except ImportError:\n        pass\n"
        ),
    })
    assert graph["fmuia.pkg"] == {"fmuia.pkg.impl"}  # its own package is already running
    assert graph["fmuia.pkg.impl"] == {"fmuia.user"}  # inside a function
    assert graph["fmuia.pkg.other"] == {"fmuia.pkg.impl", "fmuia.pkg"}  # a submodule; a re-exported name
    assert graph["fmuia.user"] == {"fmuia.pkg"}  # not the TYPE_CHECKING import
    assert cycles(graph) == [["fmuia.pkg", "fmuia.pkg.impl", "fmuia.user"]]
    assert _graph_of(tmp_path, {}, deferred=False)["fmuia.pkg.impl"] == set()


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert cycles({"a": {"a"}, "b": {"a"}}) == [["a"]]  # a self-import


def test_no_import_cycles_of_any_kind():
    """Function-level imports included: a cycle there is a tangle all the same."""
    graph = import_graph(deferred=True)
    found = cycles(graph)
    described = []
    for component in found:
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
        described.append(f"[{', '.join(component)}] ({'; '.join(edges)})")
    assert found == [], "import cycles: " + " | ".join(described)


def test_prediction_imports_no_training_scoring_or_plotting():
    code = textwrap.dedent("""
        import sys
        import fmuia.predict
        import fmuia.predict.api, fmuia.predict.pipeline, fmuia.kinds, fmuia.metrics
        banned = ("sklearn", "matplotlib", "pandas", "fmuia.train", "fmuia.evaluate", "fmuia.cli", "fmuia.synthetic")
        print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in banned or m.startswith(banned)))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout


# What a command that runs no network must not import: torch and the libraries built on it.
NETWORK_LIBRARIES = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "albumentations", "onnxruntime")

_RUN_COMMAND = textwrap.dedent("""
    import sys
    from fmuia.cli.main import main
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # --help
        code = exc.code
    banned = {banned!r}
    print("EXIT", code, "LOADED", sorted({{m.split(".")[0] for m in sys.modules}} & set(banned)))
""")


def _run_cli(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    code = _RUN_COMMAND.format(banned=NETWORK_LIBRARIES)
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_commands_without_a_network_never_import_torch(tmp_path):
    """--help, --version, validate, evaluate, report and synth, each run for real in a fresh
    process: their start-up and their work stay free of torch (seconds saved per call)."""
    data = tmp_path / "synth"
    assert _run_cli(["synth", str(data), "--per-task", "2", "--val", "0", "--test", "2", "--workers", "1",
                     "--tasks", "fetal_head,breast_2cls,thyroid_nodule_det,FUGC"], tmp_path) == "EXIT 0 LOADED []"
    test_root = data / "test"
    pred = tmp_path / "pred"
    code = f"from fmuia.evaluate.truth_submission import write_truth_submission as w; w({str(test_root)!r}, {str(pred)!r}, noise=0.2)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    commands = [
        ["--version"],
        ["--help"],
        ["evaluate", "--help"],
        ["validate", str(test_root)],
        ["validate", str(test_root), "--quick"],
        ["evaluate", "--data", str(test_root), "--pred", str(pred), "--out", str(tmp_path / "eval"), "--workers", "1"],
        ["report", "--data", str(test_root), "--pred", str(pred), "--out", str(tmp_path / "report"), "--workers", "1",
         "--per-task", "1"],
    ]
    for args in commands:
        assert _run_cli(args, tmp_path) == "EXIT 0 LOADED []", args
    assert (tmp_path / "eval" / "results.json").is_file() and (tmp_path / "report" / "index.html").is_file()


def test_the_kinds_register_their_heads_on_first_use():
    code = textwrap.dedent("""
        import sys
        from fmuia import kinds
        assert "torch" not in sys.modules
        defaults = {k.name: k.default_head for k in kinds.all_kinds()}
        assert "torch" not in sys.modules
        assert all(k.default_head in k.head_types for k in kinds.all_kinds()), defaults
        from fmuia.kinds.base import Head  # where kinds written before the split import it from
        from fmuia.kinds.head import Head as head_base
        assert Head is head_base
        print("OK", "torch" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "OK True"
