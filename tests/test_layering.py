"""The layers of the project, checked on its imports (``verif/imports.py`` reads them from the
sources: module level and inside functions, relative imports resolved).

A module imports only its own package and the packages :data:`ALLOWED` lists for it; no two
project modules import each other in a circle, however long; the leaf layers use only the
third-party packages :data:`THIRD_PARTY` lists. The rule functions are checked on synthetic
import graphs holding each violation the layering must catch.
"""

import sys
import tomllib
from pathlib import Path

import pytest

from spikeforge.verif.imports import (external_imports, import_closure, module_imports,
                                      project_modules)

ALL = {"spikeforge.contract", "spikeforge.errors", "spikeforge.progress", "spikeforge.hdl",
       "spikeforge.golden", "spikeforge.verif", "spikeforge.synth", "spikeforge.lazy",
       "spikeforge.commands", "spikeforge.compiler", "spikeforge.driver", "spikeforge"}

#: Layer (a package, or a module of the top package) -> the layers its modules may import,
#: besides their own. A module belongs to the longest layer name its name starts with.
ALLOWED = {
    "spikeforge.contract": set(),
    "spikeforge.errors": set(),
    "spikeforge.progress": set(),
    "spikeforge.lazy": set(),
    "spikeforge.hdl": {"spikeforge.contract"},
    "spikeforge.golden": {"spikeforge.contract", "spikeforge.progress", "spikeforge.errors"},
    "spikeforge.verif": {"spikeforge.hdl", "spikeforge.golden", "spikeforge.contract",
                         "spikeforge.compiler", "spikeforge.progress", "spikeforge.errors",
                         "spikeforge.driver"},
    # the host driver: the protocol, and the golden model's input/output addressing
    "spikeforge.driver": {"spikeforge.contract", "spikeforge.golden"},
    "spikeforge.synth": {"spikeforge.hdl", "spikeforge.verif", "spikeforge.contract"},
    "spikeforge.compiler": {"spikeforge.golden", "spikeforge.contract", "spikeforge.progress",
                            "spikeforge.errors"},
    "spikeforge.commands": ALL,
    "spikeforge.cli": {"spikeforge", "spikeforge.errors", "spikeforge.lazy",
                       "spikeforge.commands"},
    "spikeforge.__main__": {"spikeforge.cli"},
    # the top package's __init__ (its version), and any module of it not named above
    "spikeforge": set(),
}

#: Layer -> the packages outside the project (besides the standard library) it may import.
THIRD_PARTY = {
    "spikeforge.contract": set(),
    "spikeforge.hdl": {"amaranth", "numpy"},
}


def layer(module):
    """The :data:`ALLOWED` key ``module`` belongs to."""
    return max((key for key in ALLOWED if module == key or module.startswith(key + ".")),
               key=len)


def violation(source, target):
    """Why ``source`` may not import ``target``, or ``None`` when it may."""
    here, there = layer(source), layer(target)
    if here == there or there in ALLOWED[here]:
        return None
    return f"{source} ({here}) imports {target} ({there})"


def cycles(graph):
    """The import cycles of ``graph`` (``{module: iterable of modules}``): a list of sorted
    lists of the modules of each strongly connected part with more than one module."""
    index, low, stack, on_stack, parts = {}, {}, [], set(), []

    def visit(node):                           # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                parts.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return parts


# --- the rules on the violations the issue names, as synthetic import graphs

@pytest.mark.parametrize("source,target", [
    ("spikeforge.hdl.engine", "spikeforge.golden.conv"),          # accumulator_bits, once
    ("spikeforge.hdl.engine", "spikeforge.verif.engine_model"),
    ("spikeforge.hdl.memory", "spikeforge.synth.flow"),
    ("spikeforge.hdl.lif", "spikeforge.commands.common"),
    ("spikeforge.hdl.lif", "spikeforge.errors"),
    ("spikeforge.golden.conv", "spikeforge.hdl.engine"),
    ("spikeforge.golden.integer_model", "spikeforge.verif.layer_rtl"),
    ("spikeforge.golden.energy", "spikeforge.synth.report"),
    ("spikeforge.golden.modelfile", "spikeforge.commands.common"),
    ("spikeforge.verif.runner", "spikeforge.synth.flow"),         # SynthTarget, once
    ("spikeforge.verif.bench_engine", "spikeforge.commands.common"),
    ("spikeforge.verif.bench_sdsa", "spikeforge.commands.common"),
    ("spikeforge.synth.flow", "spikeforge.commands.synth"),
    ("spikeforge.contract.sizes", "spikeforge.hdl.params"),
    ("spikeforge.errors", "spikeforge.commands.common"),
    ("spikeforge.lazy", "spikeforge.commands.bench"),
])
def test_rule_refuses(source, target):
    assert violation(source, target) is not None


@pytest.mark.parametrize("source,target", [
    ("spikeforge.hdl.engine", "spikeforge.contract.sizes"),
    ("spikeforge.hdl.engine", "spikeforge.hdl.memory"),
    ("spikeforge.golden.conv", "spikeforge.contract.sizes"),
    ("spikeforge.golden.train", "spikeforge.progress"),
    ("spikeforge.verif.runner", "spikeforge.hdl.target"),
    ("spikeforge.verif.tb_engine", "spikeforge.golden.conv"),
    ("spikeforge.synth.flow", "spikeforge.verif.units"),
    ("spikeforge.commands.bench", "spikeforge.verif.bench_engine"),
    ("spikeforge.cli", "spikeforge.commands.sim"),
])
def test_rule_allows(source, target):
    assert violation(source, target) is None


@pytest.mark.parametrize("graph,expected", [
    # golden/models before this issue: metaspikformer imported variants inside a function
    ({"m.metaspikformer": ["m.blocks", "m.variants"], "m.variants": ["m.metaspikformer"],
      "m.blocks": []}, [["m.metaspikformer", "m.variants"]]),
    # verif <-> synth through three modules
    ({"v.runner": ["s.flow"], "s.flow": ["s.qor"], "s.qor": ["v.runner"]},
     [["s.flow", "s.qor", "v.runner"]]),
    ({"a": ["b"], "b": ["c"], "c": []}, []),
    ({"a": ["b", "c"], "b": ["c"], "c": []}, []),
])
def test_cycles_found(graph, expected):
    assert cycles(graph) == expected


def test_walker_reads_relative_and_function_imports():
    # from ..verif import bench_engine (two dots, a sub-module named in the import list)
    assert "spikeforge.verif.bench_engine" in module_imports("spikeforge.commands.bench")
    # imports inside a function count
    assert "spikeforge.verif.runner" in module_imports("spikeforge.verif.bench_sdsa")
    # from . import __version__ is an import of the package itself
    assert "spikeforge" in module_imports("spikeforge.cli")
    assert "spikeforge.golden.models.config" in module_imports("spikeforge.golden.models")
    # a module's closure holds its parent packages, which run first
    assert set(import_closure(["spikeforge.contract.sizes"])) == {
        "spikeforge", "spikeforge.contract", "spikeforge.contract.sizes"}


# --- the rules on the tree

def _packages():
    """The project's packages as the install maps them (pyproject's ``package-dir``)."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    return sorted(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"])


def _named_imports():
    """Imports by name (``importlib`` on a string): the unit registry's components and
    testbenches, the CLI's lazy subcommands."""
    from spikeforge.cli import SUBCOMMANDS
    from spikeforge.verif.units import UNITS
    edges = {"spikeforge.cli": {target.partition(":")[0] for target in SUBCOMMANDS.values()}}
    edges["spikeforge.verif.units"] = {
        name.partition(":")[0] for unit in UNITS.values()
        for name in (unit.component, unit.testbench)}
    return edges


@pytest.fixture(scope="module")
def graph():
    modules = project_modules(_packages())
    assert {"spikeforge.cli", "spikeforge.hdl.packer", "spikeforge.golden.conv",
            "spikeforge.verif.runner", "spikeforge.synth.flow"} <= set(modules)
    edges = {module: module_imports(module) for module in modules}
    for source, targets in _named_imports().items():
        for target in targets:
            edges[source].setdefault(target, ["(by name)"])
    return edges


def test_every_import_follows_the_layers(graph):
    bad = [f"{violation(source, target)} (line {', '.join(map(str, lines))})"
           for source, targets in sorted(graph.items())
           for target, lines in sorted(targets.items()) if violation(source, target)]
    assert not bad, "\n".join(["imports across the layers:", *bad])


def test_no_import_cycle(graph):
    found = cycles({source: list(targets) for source, targets in graph.items()})
    assert not found, "\n".join(["import cycles:", *(" <-> ".join(part) for part in found)])


@pytest.mark.parametrize("leaf", sorted(THIRD_PARTY))
def test_leaf_layers_use_few_packages(graph, leaf):
    allowed = THIRD_PARTY[leaf] | set(sys.stdlib_module_names)
    bad = [f"{module} imports {package}" for module in sorted(graph) if layer(module) == leaf
           for package in sorted(external_imports(module)) if package not in allowed]
    assert not bad, "\n".join(bad)
