"""Malformed command-line values: every one is refused with one line, status 2, no traceback and
no output file, before any work starts.

The cases are generated, not listed: every option of every subcommand gets values outside its
type and range (taken from the option's own click type), every elaboration parameter of every
registered unit gets values of the wrong type and far too large ones (taken from the unit
registry, so renamed parameters are covered as they are), every stimulus setting gets values
outside the range of its kind, and ``-o`` gets paths under a file. The commands run in this
process through ``spikeforge.cli.main``; the functions that do the work (simulate, elaborate,
synthesize, train, run a model) are replaced by ones that fail the test, so a value that gets
past its check is caught at once instead of starting a long (or endless) run.
"""

import random
import signal

import click
import pytest

from spikeforge.cli import SUBCOMMANDS, cli, main
from spikeforge.commands import common
from spikeforge.commands.common import (STIMULUS_COUNT_MAX, Integer, Number, OutputFile,
                                        atomic_output, check_stimulus, literal_value)
from spikeforge.errors import UserError
from spikeforge.verif.units import UNITS

SEED = 16

# (module, attribute) of every function that starts real work.
WORK = [("spikeforge.verif.runner", "simulate"), ("spikeforge.verif.runner", "generate_verilog"),
        ("spikeforge.synth.flow", "synthesize"), ("spikeforge.synth.table", "measure_units"),
        ("spikeforge.golden.train", "train"), ("spikeforge.golden.integer_model", "evaluate"),
        ("spikeforge.verif.layer_rtl", "inference_report"),
        ("spikeforge.synth.boards", "build_board")]


#: Seconds a refusal may take (a value that gets past its check could elaborate for hours).
SECONDS = 20


class ReachedWork(AssertionError):
    pass


@pytest.fixture(autouse=True)
def time_bound():
    """Fail a case that takes more than :data:`SECONDS` instead of hanging the suite."""
    def expired(signum, frame):
        raise TimeoutError(f"more than {SECONDS} s: the value was not refused at its option")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def guarded(monkeypatch):
    """Replace every function that does work by one that raises :class:`ReachedWork`."""
    import importlib
    for module, name in WORK:
        def reached(*args, _name=name, **kwargs):
            raise ReachedWork(f"a bad value reached {_name}()")
        monkeypatch.setattr(importlib.import_module(module), name, reached)


def refused(args, capsys, folder=None):
    """Run ``spikeforge ARGS``; assert the contract; return the error line."""
    before = sorted(folder.rglob("*")) if folder is not None else None
    with pytest.raises(SystemExit) as info:
        main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert info.value.code == 2, (args, err)
    assert len(lines) == 1 and lines[0].startswith("spikeforge: error: "), (args, err)
    assert "Traceback" not in err and out == "", (args, out)
    if folder is not None:
        assert sorted(folder.rglob("*")) == before, f"{args} left a file behind"
    return lines[0]


def _command(path):
    command = cli
    for name in path:
        command = command.get_command(None, name)
    return command


def _commands():
    """``[(path, command)]`` of every leaf subcommand (``synth unit``, ``synth table``, …)."""
    out = []
    for name in SUBCOMMANDS:
        command = _command([name])
        if isinstance(command, click.Group):
            out += [((name, sub), command.commands[sub]) for sub in command.commands]
        else:
            out.append(((name,), command))
    return out


def _bad_values(kind, rng):
    """Values outside a click parameter type ``kind``."""
    if isinstance(kind, Integer):
        values = ["x", "1.5", "", "0x10", "9" * 5000, "nan"]
        values += [kind.low - 1 - rng.randrange(1000)] if kind.low is not None else []
        values += [kind.high + 1 + rng.randrange(10 ** 9)] if kind.high is not None else []
        return values
    if isinstance(kind, Number):
        values = ["nan", "inf", "-inf", "1e400", "x", ""]
        values += [kind.low - rng.random()] if kind.low is not None else []
        values += [kind.high * (1 + rng.random()) + 1] if kind.high is not None else []
        return values
    if isinstance(kind, click.Choice):
        return ["nosuch", "", kind.choices[0].upper() + "x"]
    return []


def _required(path, command):
    """Arguments that make ``command`` runnable apart from the option under test."""
    args = [UNITS["packer"].name] if any(p.name == "unit" and p.required
                                         for p in command.params
                                         if isinstance(p, click.Argument)) else []
    if path == ("synth", "board"):
        args += ["--board", "icebreaker"]
    if path == ("synth", "sweep"):
        name, value = next(iter(UNITS["packer"].defaults.items()))
        args += ["--over", f"{name}={value}"]
    return args


def _option_cases(rng):
    cases = []
    for path, command in _commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag:
                continue
            for value in _bad_values(param.type, rng):
                cases.append((path, [*path, *_required(path, command), param.opts[0], value]))
    return cases


OPTION_CASES = _option_cases(random.Random(SEED))


@pytest.mark.parametrize("path,args", OPTION_CASES,
                         ids=[" ".join(map(str, a))[:60] for _, a in OPTION_CASES])
def test_bad_option_value(path, args, guarded, capsys, tmp_path):
    line = refused(args, capsys, tmp_path)
    option = args[-2]
    assert option in line or "Invalid value" in line, line


def test_every_numeric_option_is_checked():
    """No option of a subcommand takes a bare ``int``/``float`` (which accept out-of-range,
    NaN and infinite values): each has an :class:`Integer` or :class:`Number` type."""
    loose = [(path, param.opts[0]) for path, command in _commands()
             for param in command.params
             if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType))]
    assert not loose, loose


def _bad_parameters(default):
    """Values no elaboration parameter with this default accepts."""
    if isinstance(default, bool):
        return [2, "x", [True]]
    if isinstance(default, int):
        return [-1, 10 ** 9, 2 ** 70, 1.5, "x", True, [default]]
    if isinstance(default, str):
        return ["nosuch", 3, None, [default]]
    return [-1, 10 ** 9, "x"]                  # None: chosen by the unit unless given


def _literal(value):
    return repr(value)


PARAM_CASES = [(unit.name, name, value) for unit in UNITS.values()
               for name, default in unit.defaults.items() for value in _bad_parameters(default)]


@pytest.mark.parametrize("unit,name,value", PARAM_CASES,
                         ids=[f"{u}-{n}={v!r}"[:50] for u, n, v in PARAM_CASES])
def test_bad_unit_parameter(unit, name, value, guarded, capsys, tmp_path):
    out = tmp_path / "out" / "top.v"
    line = refused(["verilog", unit, "-p", f"{name}={_literal(value)}", "-o", out], capsys,
                   tmp_path)
    assert name in line, line


@pytest.mark.parametrize("command", [["sim"], ["synth"], ["synth", "sweep"]])
def test_bad_unit_parameter_every_command(command, guarded, capsys):
    """sim, synth and sweep check parameters the same way (a few cases each)."""
    unit = UNITS["packer"]
    name = next(iter(unit.defaults))
    for value in (10 ** 9, "x", -1):
        args = [*command, unit.name, "-p", f"{name}={value!r}"]
        if command[-1] == "sweep":
            args = [*command, unit.name, "--over", f"{name}={value!r}"]
        assert name in refused(args, capsys)


@pytest.mark.parametrize("text", ["lanes", "=3", "9x=1", "a b=1", "lanes=" + "1" * 300,
                                  "lanes={1}", "lanes=b'x'", "lanes=1e400", "lanes=[[[1]]]",
                                  "lanes=1j", "lanes={'a': 1}"])
def test_malformed_assignment(text, guarded, capsys):
    for option in ("-p", "--stim"):
        line = refused(["sim", "packer", option, text], capsys)
        assert option in line or "--param" in line, line


def _bad_stimulus(default, rng):
    if isinstance(default, int) and not isinstance(default, bool):
        return [0, -rng.randrange(1, 100), STIMULUS_COUNT_MAX + 1, 1.5, "x", True, None]
    if isinstance(default, float):
        return [1, 1.0, 1.5, -0.1, -rng.random(), "x", None, [0.5], True]
    return [1, "x", [0.5], [0.1, 0.2, 2.0], [0.1, -0.2, 0.3], [0.1, 0.2, 0.3, 0.4], [[0.1] * 3]]


STIM_CASES = [(unit.name, name, value) for unit in UNITS.values()
              for name, default in unit.stimulus.items()
              for value in _bad_stimulus(default, random.Random(f"{SEED}{name}"))]


@pytest.mark.parametrize("unit,name,value", STIM_CASES,
                         ids=[f"{u}-{n}={v!r}"[:50] for u, n, v in STIM_CASES])
def test_bad_stimulus(unit, name, value, guarded, capsys):
    line = refused(["sim", unit, "--stim", f"{name}={value!r}"], capsys)
    assert name in line, line


def test_unknown_stimulus_names_the_settings(guarded, capsys):
    for unit in UNITS.values():
        line = refused(["sim", unit.name, "--stim", "nosuch=1"], capsys)
        assert "nosuch" in line and all(name in line for name in unit.stimulus), line


def test_good_stimulus_is_accepted():
    """The edges of each kind pass (the checks refuse only what the testbench cannot run)."""
    for unit in UNITS.values():
        for name, default in unit.stimulus.items():
            if isinstance(default, int):
                values = [1, STIMULUS_COUNT_MAX]
            elif isinstance(default, float):
                values = [0, 0.0, 0.999]
            else:
                values = [None, [0.0, 1.0, 0.5]]
            for value in values:
                assert check_stimulus(unit, {name: value}) == {name: value}


def test_default_stimulus_and_parameters_pass():
    for unit in UNITS.values():
        check_stimulus(unit, dict(unit.stimulus))
        common.check_unit(unit.name, dict(unit.defaults))


@pytest.mark.parametrize("command", [["verilog", "packer", "-o"], ["synth", "table", "-o"],
                                     ["train", "-o"]])
def test_output_under_a_file_or_a_folder(command, guarded, capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for target in (afile / "x.out", afile / "deeper" / "x.out", tmp_path, ""):
        line = refused([*command, target], capsys, tmp_path)
        assert "-o" in line or "--output" in line, line
    assert afile.read_text() == "keep"


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "model.npz"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as part:
            part.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and not any(p.is_file() for p in tmp_path.rglob("*"))
    target.parent.mkdir(exist_ok=True)
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as part:
            part.write_text("new, half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and sorted(tmp_path.rglob("*")) == [target.parent, target]
    with atomic_output(target) as part:
        part.write_text("new")
    assert target.read_text() == "new" and sorted(tmp_path.rglob("*")) == [target.parent, target]


def test_output_file_type_accepts_new_folders(tmp_path):
    path = OutputFile().convert(str(tmp_path / "a" / "b" / "x.v"), None, None)
    assert path == tmp_path / "a" / "b" / "x.v"


@pytest.mark.parametrize("text,value", [("16", 16), ("'soft'", "soft"), ("soft", "soft"),
                                        ("None", None), ("(1, 2)", [1, 2]), ("[0.5]", [0.5]),
                                        ("1e400x", "1e400x"), ("9" * 5000, "9" * 5000)])
def test_literal_value(text, value):
    assert literal_value(text) == value


@pytest.mark.parametrize("text", ["{1}", "b'x'", "1e400", "-1e400", "1j", "{'a': 1}",
                                  "[[[1]]]"])
def test_literal_value_refuses(text):
    with pytest.raises(ValueError):
        literal_value(text)


def test_check_unit_errors_are_user_errors():
    with pytest.raises(UserError, match="unknown unit"):
        common.check_unit("nosuch", {})
    with pytest.raises(UserError, match="no parameter 'nosuch'"):
        common.check_unit("packer", {"nosuch": 1})
