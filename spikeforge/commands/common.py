"""Options, value checks and output helpers shared by the subcommands.

Every value a user gives is checked where its option is declared (a click type or callback) or,
where the check needs a registered unit, by :func:`check_unit` / :func:`check_stimulus` before
any work starts. A bad value raises ``click.UsageError`` or :class:`~spikeforge.errors.UserError`
with one line that names the option (and the parameter), which ``spikeforge.cli.main`` prints as
``spikeforge: error: …`` with exit status 2. Output files are written through
:func:`atomic_output`, so a failed command leaves no partial file behind.
"""

import ast
import contextlib
import json
import math
import os
from pathlib import Path

import click

from ..errors import UserError

__all__ = ["json_option", "param_option", "stim_option", "simulator_option", "Integer",
           "Number", "OutputFile", "SEED", "literal_value", "check_unit", "check_stimulus",
           "STIMULUS_COUNT_MAX", "atomic_output", "emit", "echo_table"]

#: Longest ``VALUE`` of a ``NAME=VALUE`` option.
VALUE_CHARS = 200
#: Largest count a stimulus setting (tokens, samples, frames, bytes) may ask for.
STIMULUS_COUNT_MAX = 100_000


def _refuse(param, message):
    name = param.opts[0] if param is not None and param.opts else "value"
    raise click.UsageError(f"{name} {message}")


def _show(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Bounded(click.ParamType):
    """A number option in ``[low, high]`` (``None``: no limit); refused naming the option."""

    def __init__(self, low=None, high=None):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        value = self.parse(value, param)
        if self.low is not None and value < self.low:
            _refuse(param, f"must be at least {self.show(self.low)}, not {self.show(value)}")
        if self.high is not None and value > self.high:
            _refuse(param, f"must be at most {self.show(self.high)}, not {self.show(value)}")
        return value


class Integer(_Bounded):
    """An integer option in ``[low, high]`` (``None``: no limit)."""

    name = "integer"
    show = staticmethod(str)

    def parse(self, value, param):
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value).strip(), 10)
            except ValueError:
                _refuse(param, f"must be an integer, not {_show(value)}")
        return value


class Number(_Bounded):
    """A finite number option in ``[low, high]``; above ``low`` (default 0) when ``positive``."""

    name = "number"
    show = staticmethod("{:g}".format)

    def __init__(self, low=None, high=None, *, positive=False):
        super().__init__(low, high)
        self.positive = positive

    def parse(self, value, param):
        try:
            value = float(value)
        except (TypeError, ValueError):
            _refuse(param, f"must be a number, not {_show(value)}")
        if not math.isfinite(value):
            _refuse(param, f"must be a finite number, not {value}")
        if self.positive and value <= (self.low or 0):
            _refuse(param, f"must be more than {self.show(self.low or 0)}, not {self.show(value)}")
        return value


#: A random seed (``--seed``): the range the simulation runner draws its own seeds from.
SEED = Integer(0, (1 << 31) - 1)


class OutputFile(click.ParamType):
    """A file to write (``-o``), or with ``folder=True`` a folder to write files into: not the
    other kind, and the nearest part of it that exists a folder one can write in (missing
    folders are made when the output is written)."""

    def __init__(self, *, folder=False):
        self.folder = folder
        self.name = "folder" if folder else "file"

    def convert(self, value, param, ctx):
        text = os.fspath(value)
        if not text or "\0" in text:
            _refuse(param, f"must name a {self.name}, not {_show(text)}")
        path = Path(text)
        try:
            if path.is_dir() and not self.folder:
                _refuse(param, f"{text!r} is a folder, not a file")
            candidates = (path.absolute(), *path.absolute().parents) if self.folder \
                else path.absolute().parents
            for folder in candidates:
                if folder.exists():
                    if not folder.is_dir():
                        _refuse(param, f"{text!r}: {str(folder)!r} is a file, not a folder")
                    if not os.access(folder, os.W_OK | os.X_OK):
                        _refuse(param, f"{text!r}: folder {str(folder)!r} is not writable")
                    break
        except OSError as exc:
            _refuse(param, f"{text!r} cannot be written ({exc.strerror or exc})")
        return path


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path`` to write the output to; when the block ends
    without an error it replaces ``path``, otherwise it is removed, so a failed or interrupted
    command leaves no partial file (and an older ``path`` as it was)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        temporary.unlink(missing_ok=True)


def literal_value(text):
    """A ``VALUE`` of ``NAME=VALUE``: a Python literal (number, string, bool, ``None``, list or
    tuple of them), or else the text itself. Returns what JSON can carry (tuples become lists);
    raises ``ValueError`` for anything else (a set, bytes, a dict, a non-finite number)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value, depth=0):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    if isinstance(value, (list, tuple)) and depth < 2:
        return [_plain(item, depth + 1) for item in value]
    raise ValueError(f"{_show(value)} is not a number, string, bool, None or list of them")


def _assignments(ctx, param, pairs):
    """Click callback: ``("lanes=16", "mode='soft'")`` → ``{"lanes": 16, "mode": "soft"}``."""
    option = param.opts[0]
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise click.UsageError(f"{option} wants NAME=VALUE, not {_show(pair)}")
        if len(text) > VALUE_CHARS:
            raise click.UsageError(f"{option} {name}=…: the value is longer than "
                                   f"{VALUE_CHARS} characters")
        try:
            out[name] = literal_value(text)
        except ValueError as exc:
            raise click.UsageError(f"{option} {name}={text}: {exc}") from None
    return out


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object instead of text.")

param_option = click.option(
    "--param", "-p", "params", multiple=True, metavar="NAME=VALUE", callback=_assignments,
    help="Elaboration parameter over the unit's default (repeatable); the unit checks it.")

stim_option = click.option(
    "--stim", "stim", multiple=True, metavar="NAME=VALUE", callback=_assignments,
    help="Stimulus setting over the unit's default (repeatable): a count (tokens, samples, "
         f"frames, bytes) is an integer in 1..{STIMULUS_COUNT_MAX:,}; an idle or stall "
         "probability or a spike rate a number in [0, 1); sdsa's rates null or [q, k, v] "
         "spike rates in [0, 1].")


def _simulator(ctx, param, value):
    from spikeforge.verif.runner import SIMULATORS
    if value not in SIMULATORS:
        raise click.UsageError(f"unknown simulator {_show(value)} "
                               f"(simulators: {', '.join(SIMULATORS)})")
    return value


simulator_option = click.option("--simulator", "-s", default="icarus", show_default=True,
                                callback=_simulator, help="icarus or verilator.")


def check_unit(unit_name, params, *, option="--param"):
    """The registered unit named ``unit_name``, after constructing its component with
    ``params`` over its defaults: every unit checks its parameters at construction
    (``hdl/params.py``), so this refuses an unknown name and a bad or too large value (naming
    it, and ``option``, where the value came from) before Amaranth elaborates anything.

    Raises
    ------
    UserError
    """
    from spikeforge.verif.units import get_unit
    try:
        unit = get_unit(unit_name)
        unit.resolve(params)
    except LookupError as exc:
        raise UserError(exc.args[0]) from None
    try:
        unit.build(params)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{option}: unit {unit.name!r}: {exc}") from None
    return unit


def _stimulus_error(unit, name, message):
    return UserError(f"--stim: unit {unit.name!r}: {name} {message}")


def check_stimulus(unit, stim):
    """``stim`` (``--stim`` settings), each a setting of ``unit``'s testbench in its range.

    The kind of a setting is that of its default in the unit registry: an integer default is a
    count (an integer in ``1..STIMULUS_COUNT_MAX``), a float default a probability or a rate
    (a number in ``[0, 1)``: an idle or stall probability of 1 would never transfer); a
    ``None`` default (sdsa's ``rates``) takes ``None`` or ``[q, k, v]`` spike rates in
    ``[0, 1]``.

    Raises
    ------
    UserError
        Naming the setting.
    """
    for name, value in stim.items():
        if name not in unit.stimulus:
            known = ", ".join(sorted(unit.stimulus)) or "none"
            raise UserError(f"--stim: unit {unit.name!r} has no stimulus setting {name!r} "
                            f"(settings: {known})")
        default = unit.stimulus[name]
        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 1 <= value <= STIMULUS_COUNT_MAX:
                raise _stimulus_error(unit, name, f"must be an integer in "
                                      f"1..{STIMULUS_COUNT_MAX}, not {_show(value)}")
        elif isinstance(default, float):
            if not _rate(value) or value >= 1:
                raise _stimulus_error(unit, name, f"must be a number in [0, 1), "
                                      f"not {_show(value)}")
        elif value is not None and not (isinstance(value, list) and len(value) == 3
                                        and all(_rate(rate) for rate in value)):
            raise _stimulus_error(unit, name, f"must be None or [q, k, v] spike rates in "
                                  f"[0, 1], not {_show(value)}")
    return stim


def _rate(value):
    """A real number in ``[0, 1]``."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= 1)


def emit(obj, as_json, text=None):
    """Print ``obj`` as JSON, or ``text`` (default: ``key: value`` lines)."""
    if as_json:
        click.echo(json.dumps(obj, sort_keys=False))
    elif text is not None:
        click.echo(text)
    else:
        for key, value in obj.items():
            click.echo(f"{key}: {value}")


def echo_table(header, rows, *, align):
    """Print ``rows`` (lists of cells, ``None`` for blank) under ``header`` as columns aligned
    by ``align``, one letter per column: ``l`` left (names), ``r`` right (numbers)."""
    cells = [[("" if cell is None else str(cell)) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(header))]
    for row in cells:
        text = [cell.ljust(widths[i]) if align[i] == "l" else cell.rjust(widths[i])
                for i, cell in enumerate(row)]
        click.echo("  ".join(text).rstrip())
