"""The spikeforge command: help everywhere, one-line errors with status 2, JSON output."""

import json
import subprocess
import sys

import pytest

from spikeforge.cli import SUBCOMMANDS


def spikeforge(*args):
    return subprocess.run([sys.executable, "-m", "spikeforge", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("args", [[]] + [[name] for name in SUBCOMMANDS])
def test_help(args):
    result = spikeforge(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


@pytest.mark.parametrize("args,needle", [
    (["sim", "nosuchunit"], "unknown unit 'nosuchunit'"),
    (["sim", "packer", "--simulator", "modelsim"], "unknown simulator 'modelsim'"),
    (["sim", "packer", "-p", "nosuch=1"], "no parameter 'nosuch'"),
    (["verilog", "packer", "-p", "lanes=0"], "lanes must be at least 1"),
    (["verilog", "packer", "-p", "lanes"], "NAME=VALUE"),
    (["nosuchcommand"], "No such command"),
])
def test_bad_input_is_one_line(args, needle):
    result = spikeforge(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_verilog(tmp_path):
    out = tmp_path / "packer.v"
    result = spikeforge("verilog", "packer", "-p", "lanes=4", "-p", "word_bits=8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "module top" in text and "i__payload" in text


def test_sim_json():
    result = spikeforge("sim", "packer", "--simulator", "icarus", "--seed", "3", "--json",
                        "--stim", "tokens=40")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"unit", "simulator", "checked", "mismatches", "cycles", "seconds"} <= set(figures)
    assert figures["unit"] == "packer" and figures["mismatches"] == 0
    assert figures["checked"] == 120 and figures["cycles"] > 0


def test_progress_bar_only_on_a_terminal(capsys):
    from spikeforge.progress import progress_bar

    assert list(progress_bar(range(3))) == [0, 1, 2]
    assert progress_bar(range(3)).disable      # stderr is captured here, not a terminal
    assert progress_bar(range(3), show=False).disable
    assert capsys.readouterr().err == ""
