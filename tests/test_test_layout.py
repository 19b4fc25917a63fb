"""The test tree has no __init__.py files, so pytest imports each test module by its
basename: two test files with one name in different folders break collection."""
import collections
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def test_test_module_basenames_are_unique():
    folders = collections.defaultdict(list)
    for folder, _, files in os.walk(HERE):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                folders[name].append(os.path.relpath(folder, HERE))
    clashes = {name: where for name, where in folders.items() if len(where) > 1}
    assert not clashes, f"test modules sharing a basename: {clashes}"
