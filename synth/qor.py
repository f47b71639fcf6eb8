"""Quality-of-results baselines: stored figures per device and tool version, compared with stated
tolerances.

A baseline file ``synth/baselines/<device>_yosys-<v>_nextpnr-<v>.json`` holds, for a few small
configurations, the LUT/FF/BRAM/DSP counts and the Fmax the flow produced with that exact tool
pair (the yowasp tools are deterministic for a given seed, so a re-run gives the same figures).
:func:`compare` re-runs them and checks:

- ``bram`` and ``dsp``: exactly equal (and DSP is always 0);
- ``lut`` and ``ff``: within ±``COUNT_TOLERANCE`` (relative) or ±``COUNT_SLACK`` cells, whichever
  is larger, in both directions: a change either way should be a deliberate one, recorded by
  re-running ``spikeforge synth baseline --update``;
- ``fmax_mhz``: at least ``1 - FMAX_TOLERANCE`` of the baseline (faster is never a failure).
"""

import json
from pathlib import Path

from .flow import synthesize, tool_versions, SynthesisError, DoesNotFit

__all__ = ["CASES", "COUNT_TOLERANCE", "COUNT_SLACK", "FMAX_TOLERANCE", "baseline_path",
           "load_baseline", "measure", "compare", "update"]

COUNT_TOLERANCE = 0.05
COUNT_SLACK = 4
FMAX_TOLERANCE = 0.10
BASELINE_DIR = Path(__file__).resolve().parent / "baselines"

# (unit, parameters over its defaults, cheap enough for the CI test): small configurations of
# every unit. `spikeforge synth baseline` checks them all; tests/test_synth.py the cheap ones.
# Cases of units not (yet) in the registry are skipped.
CASES = [
    ("packer", {"lanes": 8, "channels": 36, "word_bits": 16}, True),
    ("packer", {"lanes": 16, "channels": 64, "word_bits": 64}, True),
    ("uart", {"divisor": 6}, True),
    ("residual", {}, True),
    ("encoder", {}, True),
    ("lif", {"lanes": 4, "neurons": 48}, False),
    ("sdsa", {}, False),
    ("engine", {}, False),
]


def baseline_path(device, tools=None):
    tools = tools or tool_versions()
    return BASELINE_DIR / f"{device}_yosys-{tools['yosys']}_nextpnr-{tools['nextpnr']}.json"


def load_baseline(device, tools=None):
    """The stored baseline of ``device`` for these tool versions, or ``None``."""
    path = baseline_path(device, tools)
    return json.loads(path.read_text()) if path.exists() else None


def _case_key(unit, params):
    return f"{unit} " + " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def measure(device, cases=None, *, ci_only=False, cache=True, build_root=None):
    """Run the cases (default :data:`CASES`, only the cheap ones if ``ci_only``) whose unit is
    in the registry; ``{case key: figures}``."""
    from spikeforge.verif.units import UNITS
    out = {}
    for unit, params, cheap in cases or CASES:
        if unit not in UNITS or (ci_only and not cheap):
            continue
        try:
            r = synthesize(unit, device=device, params=params, seed=1, cache=cache,
                           build_root=build_root)
        except SynthesisError as exc:
            # Recorded like a figure: a case that stops fitting (or starts) is a change too.
            out[_case_key(unit, params)] = {
                "unit": unit, "params": params,
                "error": "does not fit" if isinstance(exc, DoesNotFit) else "tool failed"}
            continue
        out[_case_key(unit, params)] = {
            "unit": unit, "params": params, "lut": r.lut, "ff": r.ff, "bram": r.bram,
            "dsp": r.dsp, "fmax_mhz": r.fmax_mhz, "freq_target_mhz": r.freq_target_mhz,
            "rtl_ff_bits": r.rtl_ff_bits, "warnings": r.warnings,
        }
    return out


def _count_ok(now, then):
    return abs(now - then) <= max(COUNT_SLACK, COUNT_TOLERANCE * then)


def compare(device, measured, baseline):
    """Problems (one line each) of ``measured`` against ``baseline``; empty when all is within
    tolerance. Cases absent from the baseline are not compared."""
    problems = []
    for key, now in measured.items():
        then = baseline["cases"].get(key)
        if then is None:
            continue
        if "error" in now or "error" in then:
            if now.get("error") != then.get("error"):
                problems.append(f"{device} {key}: {now.get('error', 'synthesized')} vs "
                                f"baseline {then.get('error', 'synthesized')}")
            continue
        for name in ("lut", "ff"):
            if not _count_ok(now[name], then[name]):
                problems.append(f"{device} {key}: {name} {now[name]} vs baseline {then[name]}")
        for name in ("bram", "dsp"):
            if now[name] != then[name]:
                problems.append(f"{device} {key}: {name} {now[name]} vs baseline {then[name]}")
        if now["dsp"]:
            problems.append(f"{device} {key}: {now['dsp']} DSP blocks (must be 0)")
        if now["fmax_mhz"] < (1 - FMAX_TOLERANCE) * then["fmax_mhz"]:
            problems.append(f"{device} {key}: Fmax {now['fmax_mhz']} MHz below "
                            f"{1 - FMAX_TOLERANCE:.0%} of baseline {then['fmax_mhz']} MHz")
    return problems


def update(device, measured):
    """Write ``measured`` as the baseline of ``device`` for the installed tool versions."""
    path = baseline_path(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .devices import get_device
    data = {"device": device, "part": get_device(device).part,
            "speed_grade": get_device(device).speed_grade, "tools": tool_versions(), "seed": 1,
            "cases": measured}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
