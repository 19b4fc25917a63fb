"""The exported submission runs from its own requirements.txt and nothing else.

``Model().predict`` of an exported folder runs in ``python -I -S`` whose path is the
folder and a site folder holding exactly the distributions its requirements.txt
names (and their dependencies): no fmuia source tree, no development site-packages.
Its output must equal ``fmuia predict``'s byte for byte. (Leaving timm out of that
requirements.txt makes the same run fail with "No module named 'timm'": the folder
really sees nothing else.)
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from isolated_site import build_site, read_pins
from tiny import tiny_checkpoint

from fmuia.cli.main import main
from fmuia.predict.submission import export_submission
from fmuia.synthetic import generate

pytestmark = pytest.mark.slow

RUN_MODEL = """
import sys
stdlib = list(sys.path)
sys.path[:0] = [{folder!r}, {site!r}]
import model
from fmuia.errors import DataError
m = model.Model()
m.predict({root!r}, {out!r}, batch_size=8)
try:  # the output folder is no longer empty
    m.predict({root!r}, {out!r}, batch_size=8)
    print("SECOND RUN ACCEPTED")
except DataError as exc:
    print("SECOND RUN REFUSED", exc)
allowed = tuple([{folder!r}, {site!r}] + stdlib)
files = {{name: getattr(mod, "__file__", None) for name, mod in list(sys.modules.items())}}
outside = sorted(name for name, f in files.items()  # torch.ops and torch.classes have a bare name
                 if f and f.startswith("/") and not f.startswith(allowed))
print("OUTSIDE", outside)
print("FMUIA", sys.modules["fmuia"].__file__)
for name in ("sklearn", "matplotlib", "pandas"):  # installed for development, not required here
    try:
        __import__(name)
        print("IMPORTABLE", name)
    except ModuleNotFoundError:
        pass
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_isolated(folder: Path, site: Path, root: str, out: Path) -> subprocess.CompletedProcess:
    code = RUN_MODEL.format(folder=str(folder), site=str(site), root=root, out=str(out))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=out.parent, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("isolated")
    root = generate(str(base / "synthetic"), splits={"test": 1}, seed=3, workers=1).roots["test"]
    folder = base / "submission"
    export_submission(tiny_checkpoint(), str(folder), device="cpu", tta=True, workers=1)
    return base, root, folder


def test_exported_model_runs_from_its_requirements_alone_and_matches_fmuia_predict(exported):
    base, root, folder = exported
    site = base / "site"
    build_site(read_pins(folder / "requirements.txt"), site)
    out = base / "output"
    out.mkdir()  # the challenge gives an empty /output/
    proc = _run_isolated(folder, site, root, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "SECOND RUN REFUSED" in proc.stdout and "not empty" in proc.stdout
    assert "OUTSIDE []" in proc.stdout, proc.stdout
    assert "IMPORTABLE" not in proc.stdout, proc.stdout
    assert proc.stdout.split("FMUIA ", 1)[1].split()[0].startswith(str(folder))

    reference = base / "reference"
    assert main(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", str(reference),
                 "--device", "cpu", "--batch-size", "8", "--workers", "1", "--tta", "--no-progress"]) == 0
    got, expected = _files(out), _files(reference)
    assert sorted(got) == sorted(expected)
    assert sum(name.endswith(".png") for name in got) == 12  # one per segmentation task
    different = [name for name in expected if got[name] != expected[name]]
    assert different == []

