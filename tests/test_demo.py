"""``spikeforge demo``: its summary from the report page's figures, and its exit status (the
steps themselves are ``spikeforge report -o``'s, tested in tests/test_report_page.py; the
whole demo on the RTL takes minutes)."""

import json

import pytest
from click.testing import CliRunner

from spikeforge.cli import cli
from spikeforge.commands import demo, report

RESOURCES = {"header": ["unit", "ecp5-85k LUT", "ecp5-85k EBR", "ecp5-85k DSP", "ecp5-85k Fmax"],
             "rows": [["lif", "1", "2", "0", "200"],
                      ["accelerator", "47638", "200", "0", "45.8 (placed, not routed)"]]}


def page(mismatches=0, rtl_mismatches=0):
    return {
        "model": "m.npz", "config": "ulx3s-85f", "simulator": "verilator",
        "float_accuracy": 0.99, "golden_accuracy": 0.98, "accelerator_accuracy": 0.98,
        "rtl_accuracy": 1.0, "mismatches": mismatches, "membrane": {"rtl_mismatches": 0},
        "accuracy": {"golden": {"samples": 450}, "accelerator": {"mismatches": 0},
                     "rtl": {"samples": 8, "mismatches": rtl_mismatches,
                             "cycles_per_inference": 82821.0, "bound_cycles": 73702.0}},
        "cycles": 143833, "bound_cycles": 128949, "energy_uj": 0.963,
        "resources": {"table": RESOURCES}, "page": "/x/report.html", "json": "/x/report.json",
    }


CELLS = {"lut": 47000, "ff": 35000, "bram": 200, "dsp": 0, "seconds": 1.0}


def test_summary_lines():
    lines = list(demo._lines({**demo._summary(page()), "synthesis": CELLS}))
    assert lines[0].startswith("accuracy: float 99.00 %, integer 98.00 %, accelerator model "
                               "98.00 % (450 test samples); RTL 100.00 % (8 samples")
    assert "cycles per inference on the RTL: 82821 (bound 73702, 1.12x)" in lines
    assert "ulx3s-85f through Yosys for ECP5-85: 47000 LUT4, 35000 FF, 200 EBR, 0 DSP" in lines
    assert any(line.startswith("Fmax as recorded in docs/resources.md: 45.8 MHz (placed, not "
                               "routed)") for line in lines)
    assert lines[-1] == "report: /x/report.html"


@pytest.mark.parametrize("mismatches, rtl_mismatches, status", [(0, 0, 0), (1, 0, 1),
                                                                 (0, 2, 1)])
def test_exit_status_counts_every_mismatch(monkeypatch, mismatches, rtl_mismatches, status):
    monkeypatch.setattr("spikeforge.verif.layer_rtl.inference_report",
                        lambda *args, **kwargs: {})
    monkeypatch.setattr(report, "write_page",
                        lambda *args, **kwargs: page(mismatches, rtl_mismatches))
    monkeypatch.setattr(demo, "_synthesize", lambda config: CELLS)
    result = CliRunner().invoke(cli, ["demo", "--json"])
    assert result.exit_code == status, result.output
    out = json.loads(result.output)
    assert out["mismatches"] == mismatches + rtl_mismatches
    assert out["page"] == "/x/report.html" and out["synthesis"] == CELLS
