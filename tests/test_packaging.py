"""The package list of ``pyproject.toml`` names every package of the tree.

setuptools maps ``spikeforge.hdl`` onto ``hdl/`` and so on (``package-dir``) and installs only the
packages it lists: a sub-package missing from the list works in the editable install and is
absent from a wheel.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk(package_dir):
    found = set()
    for name, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            if ".venv" in init.parts or "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(base).parts
            dotted = ".".join((name, *relative))
            # a folder mapped on its own (spikeforge.hdl -> hdl/) is not also under spikeforge/
            if not any(other != name and other.startswith(name + ".") and
                       dotted.startswith(other) for other in package_dir):
                found.add(dotted)
    return found


def test_every_package_is_listed():
    setuptools = _pyproject()
    on_disk = _packages_on_disk(setuptools["package-dir"])
    assert on_disk - set(setuptools["packages"]) == set()


def test_every_listed_package_exists():
    setuptools = _pyproject()
    on_disk = _packages_on_disk(setuptools["package-dir"])
    assert set(setuptools["packages"]) - on_disk == set()
