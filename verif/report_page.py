"""The ``report`` page: one self-contained HTML file (styles, script and the PNG plots inline,
nothing fetched) from the page's figures (``docs/report.md`` lists them).

A small inline script sets ``document.title`` to ``IMAGES_OK <n>`` once every ``<img>`` has
loaded with a nonzero width, or ``IMAGES_BROKEN <k>`` when ``k`` did not: what the headless
browser test reads back."""

import base64
import html

from spikeforge.golden.energy import E_AC_PJ, E_MAC_PJ

from .report_plots import PLOTS

__all__ = ["render_html"]

_STYLE = """
body { font-family: sans-serif; max-width: 70em; margin: 1em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.15em 0.5em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.not-run { color: #999; font-style: italic; }
.bad { color: #b00; font-weight: bold; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #444; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.title = broken.length ? "IMAGES_BROKEN " + broken.length
                                 : "IMAGES_OK " + images.length;
});
"""

#: Marks a figure the run did not measure.
NOT_RUN = "not run"


def _e(value):
    return html.escape(str(value))


def _cell(value, form="{}"):
    if value is None:
        return f'<td class="not-run">{NOT_RUN}</td>'
    if isinstance(value, (int, float)):
        return f'<td class="n">{_e(form.format(value))}</td>'
    return f"<td>{_e(value)}</td>"


def _table(header, rows):
    """``rows`` are lists of ready ``<td>`` strings."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _accuracy(page):
    names = {"float": "float model", "golden": "golden integer model",
             "accelerator": "accelerator golden model (compiled program)",
             "rtl": "accelerator RTL (simulated, host port only)"}
    rows = []
    for key, what in names.items():
        entry = page["accuracy"][key]
        value = None if entry["accuracy"] is None else 100 * entry["accuracy"]
        rows.append([_cell(what), _cell(value, "{:.2f} %"), _cell(entry["samples"]),
                     _cell(entry["mismatches"]) if "mismatches" in entry else "<td></td>"])
    return _table(["backend", "accuracy", "test samples", "mismatches"], rows)


def _layers(page):
    rtl = page["simulator"] is not None

    def counted(row, key, form="{:.0f}"):
        value = row.get(key)
        return _cell(value, form) if value is not None else "<td></td>"

    def measured(row, key, form="{:.0f}"):
        return counted(row, key, form) if rtl else _cell(None)

    rows = []
    for row in page["layers"]:
        golden = [row.get(k) for k in ("firing_rate", "spikes_in", "sops", "dense_ops")]
        rows.append([_cell(row["name"]), _cell(row["op"]),
                     _cell(golden[0], "{:.4f}") if golden[0] is not None else "<td></td>",
                     *(_cell(v, "{:.0f}") if v is not None else "<td></td>"
                       for v in golden[1:]),
                     measured(row, "cycles"), counted(row, "model_cycles"),
                     counted(row, "bound_cycles"), measured(row, "ratio", "{:.2f}"),
                     measured(row, "mismatches")])
    return _table(["layer", "op", "firing rate", "spikes in", "SOPs", "dense-equivalent ops",
                   "RTL cycles", "cost model", "bound", "ratio", "mismatches"], rows)


def _energy(page):
    rows = [
        [_cell("SNN (this model)"), _cell(page["sops"], "{:.0f}"), _cell(page["macs"], "{:.0f}"),
         _cell(page["energy_uj"], "{:.4f}")],
        [_cell("same network as a dense ANN"), _cell(0), _cell(page["ann_macs"], "{:.0f}"),
         _cell(page["energy_uj_ann"], "{:.4f}")],
    ]
    return (f"<p>As the seeds count it (45 nm): E<sub>AC</sub> = {E_AC_PJ} pJ per SOP, "
            f"E<sub>MAC</sub> = {E_MAC_PJ} pJ per MAC; the real-input stem is counted as MACs. "
            "The dense ANN is the float network in one pass with unfused layers.</p>"
            + _table(["network", "SOPs", "MACs", "energy µJ"], rows))


def _resources(page):
    recorded = page["resources"]
    parts = []
    table = recorded["table"]
    if table is None:
        parts.append('<p class="not-run">no resource table recorded</p>')
    else:
        parts.append(f"<p>{_e(table['about'])} Source: <code>{_e(table['source'])}</code> "
                     "(written by <code>spikeforge synth table</code>; not rerun here).</p>")
        parts.append(_table(table["header"], [[_cell(c) for c in row] for row in table["rows"]]))
    for base in recorded["baselines"]:
        parts.append(f"<p>QoR baseline {_e(base['device'])} ({_e(base['part'])}, speed "
                     f"{_e(base['speed_grade'])}), Yosys {_e(base['tools']['yosys'])}, "
                     f"nextpnr {_e(base['tools']['nextpnr'])}, seed {_e(base['seed'])}: "
                     f"<code>{_e(base['source'])}</code></p>")
        parts.append(_table(["case", "LUT", "FF", "BRAM", "DSP", "Fmax MHz"], [
            [_cell(key)] + ([_cell(case["error"]), *["<td></td>"] * 4] if "error" in case else
                            [_cell(case[k]) for k in ("lut", "ff", "bram", "dsp", "fmax_mhz")])
            for key, case in base["cases"].items()]))
    return "".join(parts)


def _notes(page):
    """What each plot shows and where its figures come from."""
    trace = page["membrane"]
    rtl_ran = page["simulator"] is not None
    if trace["rtl"] is None:
        rtl = "The RTL did not run: the RTL points are not shown."
    else:
        wrong = trace["rtl_mismatches"]
        rtl = (f"RTL: the accelerator's membranes memory read back over the host port after "
               f"each step of {_e(trace['layer'])} (the layer run alone, rewritten with fewer "
               f"steps for the steps before its last), plotted as crosses; over every neuron "
               f"and step of the layer "
               + ("it equals the golden model's." if not wrong else
                  f'<span class="bad">{wrong} membranes differ from the golden model</span>.'))
    return {
        "raster": "Golden integer model, every LIF layer, evenly spaced neurons.",
        "firing_rates": "Golden integer model on this sample.",
        "cycles": (("Measured on the RTL, each layer run alone, next to " if rtl_ran else
                    "The RTL did not run (--no-rtl): ")
                   + "the accelerator golden model's cost model (the bound plus the rows of "
                   "the layers it does not count and the descriptor loads) and the "
                   "compiler's bound (0 where it does not count the layer: LIF, ADD, SUM, "
                   "READOUT)."),
        "membrane": ("Golden: the integer model's LIF membranes after each step (lines). "
                     + rtl),
        "engine_sweep": ("Counted, not simulated: the events and the analytic bound "
                         "max(events, tokens)·ceil(C_out/P) of the layers of "
                         "<code>spikeforge bench engine</code> on random inputs; its measured "
                         "cycles (minutes in the Amaranth simulator) are in docs/log.md."),
    }


def render_html(page, plots):
    """The page (a ``str``) for the figures ``page`` and the PNG bytes ``plots`` (``{key:
    bytes}`` for every key of :data:`~.report_plots.PLOTS`)."""
    where = (f"on the {page['config']} accelerator RTL ({page['simulator']})"
             if page["simulator"] else f"golden figures only (RTL {NOT_RUN})")
    notes = _notes(page)
    figures = "".join(
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(plots[key]).decode()}"><figcaption>{caption}: {notes[key]}'
        "</figcaption></figure>" for key, caption, _ in PLOTS)
    total = (f"<p>Program total: {page['cycles']:.0f} cycles on the RTL layer by layer, bound "
             f"{page['bound_cycles']:.0f}, ratio {page['ratio']:.2f}, {page['mismatches']} "
             "mismatches.</p>" if page["cycles"] is not None else
             f"<p>Program total by the cost model: {page['model_cycles']:.0f} cycles, bound "
             f"{page['bound_cycles']:.0f} (RTL {NOT_RUN}).</p>"
             if page.get("model_cycles") is not None else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SpikeForge report</title>
<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>
<h1>SpikeForge report: {_e(page['arch'])}, T = {page['time_steps']}</h1>
<p>Model <code>{_e(page['model'])}</code>, configuration {_e(page['config'])}; per-layer
figures of test sample {page['sample']} (label {page['label']}, predicted
{page['predicted']}), {_e(where)}.</p>
<h2>Accuracy</h2>{_accuracy(page)}
<h2>Per layer</h2>{_layers(page)}{total}
<h2>Energy</h2>{_energy(page)}
<h2>Resources and Fmax</h2>{_resources(page)}
<h2>Plots</h2>{figures}
</body></html>
"""
