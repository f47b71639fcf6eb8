"""``spikeforge report -o DIR``: the self-contained HTML page and its JSON, opened in headless
Chromium (Debian's ``chromium``, installed by ``make setup``) to check that every image loads."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge.cli import cli
from spikeforge.synth.recorded import read_baselines, read_table
from spikeforge.verif.layer_rtl import rtl_membranes
from spikeforge.verif.report_page import render_html
from spikeforge.verif.report_plots import PLOTS, render_plots
from spikeforge.verif.toolchain import PROJECT_ROOT

CHROMIUM = shutil.which("chromium")
# `make setup` installs Debian's chromium (Makefile APT_PACKAGES): a missing browser is a broken
# set-up, so these tests fail on it instead of skipping
needs_chromium = pytest.mark.usefixtures("chromium")


@pytest.fixture
def chromium():
    assert CHROMIUM, "chromium is not installed: run `make setup` (Debian package chromium)"
    return CHROMIUM
KEYS = {"float_accuracy", "golden_accuracy", "accelerator_accuracy", "rtl_accuracy",
        "mismatches", "layers"}


def report(*args):
    return CliRunner().invoke(cli, ["report", *args], standalone_mode=False)


def make_page(folder, *args):
    result = report("-o", str(folder), "--json", *args)
    assert result.exit_code == 0, result.output
    page = json.loads(result.output.strip().splitlines()[-1])
    assert page == json.loads((folder / "report.json").read_text())
    return page


def browser(*args):
    """Headless Chromium's stdout (the sandbox is off: the tests may run as root)."""
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=10000", *args], capture_output=True,
                          text=True, timeout=120, check=True).stdout


def title(path):
    """The page's title after load, as the inline image check set it."""
    return re.search(r"<title>(.*?)</title>", browser("--dump-dom", path.as_uri())).group(1)


@pytest.fixture(scope="module")
def golden_page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    return folder, make_page(folder, "--no-rtl", "--samples", "40", "--config", "sim-small")


def test_page_without_rtl_has_the_figures_and_marks_the_rtl(golden_page):
    folder, page = golden_page
    assert KEYS <= page.keys() and page["page"] == str(folder / "report.html")
    assert page["rtl_accuracy"] is None and page["mismatches"] is None
    assert 0.5 < page["golden_accuracy"] <= 1 and page["accuracy"]["golden"]["samples"] == 40
    assert page["accelerator_accuracy"] == page["golden_accuracy"]
    assert page["energy_uj_ann"] > page["energy_uj"] > 0
    assert page["membrane"]["rtl"] is None and len(page["membrane"]["golden"]) > 0
    text = (folder / "report.html").read_text()
    assert "not run" in text and "accelerator" in text and "4.6 pJ" in text
    # the cycles table and plot fall back on the cost model of the compiled program
    assert f"by the cost model: {page['model_cycles']:.0f} cycles" in text
    assert "cost model" in text and page["model_cycles"] > page["bound_cycles"] > 0
    # self-contained: every image inline, nothing to fetch
    assert text.count("<img") == len(PLOTS) == text.count('src="data:image/png;base64,')
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)


@needs_chromium
def test_the_page_renders_and_every_image_loads(golden_page):
    folder, _ = golden_page
    assert title(folder / "report.html") == f"IMAGES_OK {len(PLOTS)}"
    shot = folder / "shot.png"
    browser("--window-size=1200,4000", f"--screenshot={shot}", (folder / "report.html").as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_a_broken_image_is_caught(golden_page, tmp_path):
    """The check can fail: one plot's bytes cut short no longer decode."""
    folder, page = golden_page
    plots = render_plots(page)
    plots["cycles"] = plots["cycles"][:40]
    broken = tmp_path / "broken.html"
    broken.write_text(render_html(page, plots))
    assert title(broken) == "IMAGES_BROKEN 1"


def test_the_recorded_resources_are_read():
    table = read_table(PROJECT_ROOT / "docs" / "resources.md")
    units = [row[0] for row in table["rows"]]
    assert "accelerator" in units and "engine" in units
    assert all(len(row) == len(table["header"]) for row in table["rows"])
    assert {base["device"] for base in read_baselines()} >= {"ecp5-85k", "ice40-up5k"}
    assert read_table(PROJECT_ROOT / "no-such-file.md") is None


def test_rtl_membrane_rows_map_to_token_and_channel():
    """Row ``n * G + g`` holds channels ``g * lanes ...`` of token ``n``."""
    tokens, groups, lanes = 3, 2, 4
    rows = [[100 * n + 10 * g + lane for lane in range(lanes)]
            for n in range(tokens) for g in range(groups)]
    got = rtl_membranes(rows, tokens, lanes)
    assert got.shape == (tokens, groups * lanes)
    assert got[2, 5] == 200 + 10 * 1 + 1 and np.all(got[:, 0] == [0, 100, 200])


@pytest.mark.parametrize("args, message", [
    (["--samples", "5"], "--samples"),
    (["-o", str(PROJECT_ROOT / "Makefile")], "--output"),
])
def test_bad_page_options_name_the_option(args, message):
    result = report("--no-rtl", *args)
    error = result.exception
    assert result.exit_code != 0
    assert message in getattr(error, "format_message", error.__str__)()


@pytest.mark.slow
@pytest.mark.xdist_group("accelerator-verilator-sim-small")
@needs_chromium
def test_page_on_the_rtl(tmp_path):
    """The real run on the sim-small accelerator (Verilator): RTL accuracy, per-layer cycles,
    the membranes read back after every step equal to the golden model's, and the page
    renders."""
    page = make_page(tmp_path, "--config", "sim-small", "--samples", "4")
    assert page["accuracy"]["rtl"]["samples"] == 4 and page["rtl_accuracy"] is not None
    assert page["mismatches"] == 0 and page["rtl_mismatches"] == 0
    trace = page["membrane"]
    assert trace["rtl_mismatches"] == 0
    assert trace["rtl"] == trace["golden"]          # after every step
    assert any("cycles" in row for row in page["layers"])
    assert title(tmp_path / "report.html") == f"IMAGES_OK {len(PLOTS)}"
