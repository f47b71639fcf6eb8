"""The project's import graph, read from the sources without running them.

:func:`module_imports` lists the project modules one module imports, at module level and inside
functions, relative imports resolved; :func:`import_closure` follows them from some roots. The
Verilog cache key (:mod:`.runner`) hashes the closure of a unit's component, and
``tests/test_layering.py`` checks every edge against the layering rules and for cycles.

Imports by name through ``importlib`` (the unit registry, the CLI's lazy subcommands, the board
list) are not seen: those name their targets as strings.
"""

import ast
import importlib.util
from pathlib import Path

__all__ = ["PROJECT", "read_source", "module_path", "module_imports", "external_imports",
           "import_closure", "project_modules"]

#: The top package; every project module's name starts with it.
PROJECT = "spikeforge"


def read_source(path):
    """The bytes of a source file. Every read of this module goes through here (a test
    substitutes a changed source by replacing it)."""
    return Path(path).read_bytes()


def _is_project(name):
    return name == PROJECT or name.startswith(PROJECT + ".")


def module_path(name):
    """``(path, is_package)`` of the project module ``name``, or ``None`` if there is none.

    A sub-module is looked up in its parent package's folder on disk, so no project code runs;
    only the direct sub-packages of ``spikeforge`` (which the install may map to other folders,
    ``hdl/`` for ``spikeforge.hdl``) are found through the import system, which imports
    ``spikeforge`` itself.
    """
    if not _is_project(name):
        return None
    parent, _, last = name.rpartition(".")
    if parent and parent != PROJECT:
        found = module_path(parent)
        if found is None or not found[1]:
            return None
        folder = found[0].parent
        for path, is_package in ((folder / last / "__init__.py", True),
                                 (folder / f"{last}.py", False)):
            if path.is_file():
                return path, is_package
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


def _resolve(name, module, is_package, level):
    """The absolute name of ``from <level dots><name> import ...`` inside ``module``."""
    if not level:
        return name
    base = module.split(".")
    base = base[:len(base) - level + (1 if is_package else 0)]
    return ".".join(base + ([name] if name else []))


def _imported_names(name, found=None):
    """``(absolute name, line)`` of everything module ``name`` imports, wherever the statement
    stands (module level, in a function, under ``if``). ``found`` is ``(path, is_package)`` of
    a module outside the project; a project module is looked up."""
    found = found or module_path(name)
    if found is None:
        raise LookupError(f"no project module {name!r}")
    path, is_package = found
    tree = ast.parse(read_source(path), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node.module, name, is_package, node.level)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                project_module = _is_project(sub) and alias.name != "*" and module_path(sub)
                yield (sub if project_module else source), node.lineno


def _add(targets, target, line):
    lines = targets.setdefault(target, [])
    if line not in lines:
        lines.append(line)


def module_imports(name, path=None):
    """The project modules that module ``name`` imports: a dict ``{target: [lines]}``.

    Every ``import``/``from ... import`` statement counts, at module level or inside a function.
    ``from package import name`` is an import of the sub-module ``package.name`` when that
    module exists, else of ``package``. ``path`` is the source of a module outside the project
    (a test module); without it, raises ``LookupError`` for an unknown module.
    """
    targets = {}
    for target, line in _imported_names(name, None if path is None else (Path(path), False)):
        if _is_project(target) and target != name:
            _add(targets, target, line)
    return targets


def external_imports(name):
    """The top-level names of the packages outside the project (the standard library included)
    that module ``name`` imports: a dict ``{package: [lines]}``."""
    targets = {}
    for target, line in _imported_names(name):
        if not _is_project(target):
            _add(targets, target.partition(".")[0], line)
    return targets


def import_closure(roots):
    """Every project module reachable from the modules ``roots`` (themselves included): a dict
    ``{name: path}``. A module imported by name implies its parent packages, which run first."""
    seen, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        found = module_path(name)
        if found is None:
            raise LookupError(f"no project module {name!r}")
        seen[name] = found[0]
        parent = name.rpartition(".")[0]
        todo += [*module_imports(name), *([parent] if parent else [])]
    return seen


def project_modules(packages):
    """Names of every module and sub-package under the project packages ``packages``
    (themselves included), found on disk."""
    names = []
    for package in packages:
        found = module_path(package)
        if found is None or not found[1]:
            raise LookupError(f"no project package {package!r}")
        folder = found[0].parent
        names.append(package)
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            # a folder without __init__.py (data, build output) holds no modules
            if parts and all((folder.joinpath(*parts[:i]) / "__init__.py").is_file()
                             for i in range(1, len(parts))):
                names.append(".".join((package, *parts)))
    return sorted(set(names))
