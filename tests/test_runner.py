"""The Verilog cache key (:func:`spikeforge.verif.runner.verilog_key`) follows everything the
Verilog depends on: a function the elaboration calls, the parameters, the platform family, the
Amaranth version; and nothing else (the golden model, a testbench)."""

import importlib
import inspect
import sys

import pytest
from amaranth.back import rtlil

from spikeforge.verif import imports, runner
from spikeforge.verif.units import UNITS

# (unit, module, function): a function outside the component's own module that the unit's
# construction or elaboration calls.
CALLED = [
    ("engine", "spikeforge.contract.sizes", "accumulator_bits"),
    ("packer", "spikeforge.hdl.layouts", "lane_beat"),
    ("residual", "spikeforge.hdl.arith", "saturate_signed"),
]


def _calls(function, build):
    """Whether ``build()`` calls ``function`` (however the caller imported it)."""
    code, seen = function.__code__, []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code is code:
            seen.append(frame)
    sys.setprofile(profile)
    try:
        build()
    finally:
        sys.setprofile(None)
    return bool(seen)


def _changed(monkeypatch, module, old, new):
    """Make :func:`imports.read_source` return ``module``'s source with ``old`` replaced."""
    path = imports.module_path(module)[0]
    original = imports.read_source
    source = original(path).decode()
    assert old in source

    def read(where):
        if str(where) == str(path):
            return source.replace(old, new, 1).encode()
        return original(where)
    monkeypatch.setattr(imports, "read_source", read)


@pytest.mark.parametrize("unit,module,function", CALLED)
def test_key_changes_with_a_function_the_elaboration_calls(monkeypatch, unit, module,
                                                           function):
    unit = UNITS[unit]
    params = unit.resolve()
    called = getattr(importlib.import_module(module), function)
    assert _calls(called, lambda: rtlil.convert(unit.build(params)))
    before = runner.verilog_key(unit, params)
    body = inspect.getsource(called)
    _changed(monkeypatch, module, body, body + "    assert True\n")
    assert runner.verilog_key(unit, params) != before


@pytest.mark.parametrize("module,old,new", [
    ("spikeforge.golden.conv", "def conv2d_int(", "def conv2d_int_changed("),
    ("spikeforge.golden.energy", "E_AC_PJ = 0.9", "E_AC_PJ = 1.9"),
    ("spikeforge.verif.tb_engine", "import", "import os\nimport"),
])
def test_key_ignores_what_the_elaboration_does_not_import(monkeypatch, module, old, new):
    unit = UNITS["engine"]
    params = unit.resolve()
    before = runner.verilog_key(unit, params)
    _changed(monkeypatch, module, old, new)
    assert runner.verilog_key(unit, params) == before


def test_key_changes_with_params_family_and_amaranth(monkeypatch):
    unit = UNITS["engine"]
    params = unit.resolve()
    key = runner.verilog_key(unit, params)
    assert runner.verilog_key(unit, unit.resolve({"lanes": 4})) != key
    assert runner.verilog_key(unit, params, family="ecp5") != key
    version = runner.metadata.version
    monkeypatch.setattr(runner.metadata, "version",
                        lambda name: "0.0" if name == "amaranth" else version(name))
    assert runner.verilog_key(unit, params) != key


def test_key_covers_the_component_and_the_conversion():
    closure = imports.import_closure([UNITS["engine"].component.partition(":")[0],
                                      "spikeforge.hdl.target", "spikeforge.verif.runner"])
    assert {"spikeforge.contract.sizes", "spikeforge.hdl.target", "spikeforge.verif.units",
            "spikeforge.verif.toolchain"} <= set(closure)
    assert not any(name.startswith("spikeforge.golden") for name in closure)


@pytest.mark.parametrize("simulator", runner.SIMULATORS)
def test_waves_are_recorded(simulator):
    """--waves: an FST of the run, named in the result (Icarus through the project's own
    Verilog-2005 dump module: cocotb's does not compile under -g2005)."""
    result = runner.simulate("uart", simulator=simulator, seed=2, waves=True,
                             stimulus={"bytes": 4})
    assert result.waves and result.waves.endswith(".fst")
    with open(result.waves, "rb") as f:
        assert len(f.read()) > 1000
    assert runner.simulate("uart", simulator=simulator, seed=2,
                           stimulus={"bytes": 4}).waves is None
