"""One inference, layer by layer, on the accelerator's RTL (``spikeforge report``).

The golden integer model (:mod:`spikeforge.golden.integer_model`) gives every layer's spikes,
SOPs, energy and firing rate; with ``rtl`` the compiled program runs on the whole accelerator
design (the ``accelerator`` unit for the compiled configuration, in the cocotb system testbench,
driven only through its host port: :func:`~.bench_accelerator.run_rtl` in ``layers`` mode).
Each layer runs alone (START i, i + 1), its output is read back and compared with the
accelerator's golden model, and its cycles are the sequencer's counter for that descriptor.

The caller compiles (this package does not import the compiler): ``compiled`` is what
``spikeforge.compiler.compile_model`` returns for the model.
"""

from spikeforge.golden.energy import E_AC_PJ, E_MAC_PJ, Counter
from spikeforge.golden.integer_model import run_program

from .bench_accelerator import run_rtl

__all__ = ["inference_report", "merge_layers"]

#: The RTL figures a row of the report takes from the run.
RTL_KEYS = ("cycles", "bound_cycles", "model_cycles", "mismatches")


def merge_layers(golden_rows, program_layers):
    """The rows of both lists in program order: a golden row (by name) carries the figures of
    the program layer of that name; program layers the golden model does not count (residual
    adds, the readout) and golden rows the program has no layer for (the LIF inside the
    attention executor) keep their place."""
    by_name = {row["name"]: i for i, row in enumerate(golden_rows)}
    out, taken = [], 0
    for layer in program_layers:
        i = by_name.get(layer["name"])
        if i is None:
            out.append({"name": layer["name"], "op": layer["op"], **layer["rtl"]})
            continue
        out.extend(golden_rows[taken:i])
        out.append({**golden_rows[i], **layer["rtl"]})
        taken = max(taken, i + 1)
    out.extend(golden_rows[taken:])
    return out


def inference_report(model, compiled, image, *, rtl=True, simulator="verilator"):
    """Per-layer figures of one inference of ``model`` (a loaded model file) on ``image`` (int
    ``(1, C, H, W)``). With ``rtl``, the rows of the layers of ``compiled`` add what the RTL
    measured (:data:`RTL_KEYS`, ``ratio``); the totals are sums over those layers. The
    ``report`` command prints the returned dict (``docs/report.md``)."""
    counter = Counter()
    logits = run_program(model, image, counter=counter)
    rows = counter.summary()["layers"]
    for row in rows:
        if row["op"] != "lif":
            row["energy_pj"] = round(row["dense_ops"] * E_MAC_PJ if row["counted_as"] == "MAC"
                                     else row["sops"] * E_AC_PJ, 3)
    out = {
        "model": str(model.path), "arch": model.config.arch, "time_steps": model.time_steps,
        "config": compiled.config.name, "simulator": simulator if rtl else None,
        "predicted": int(logits.argmax(dim=1)[0]),
        "sops": sum(row["sops"] for row in rows if row.get("counted_as") == "AC"),
        "energy_uj": round(sum(row.get("energy_pj", 0) for row in rows) * 1e-6, 6),
    }
    totals = dict.fromkeys(("cycles", "bound_cycles", "model_cycles", "mismatches", "ratio"))
    if rtl:
        run = run_rtl(compiled, image.numpy(), simulator=simulator, mode="layers",
                      in_idle=0.0, out_stall=0.0)
        if "failure" in run:
            raise RuntimeError(f"the RTL run failed: {run['failure']}")
        layers = []
        for layer, figures in zip(compiled.layers, run["layers"]):
            measured = {key: figures[key] for key in RTL_KEYS}
            bound = measured["bound_cycles"]      # 0 where the bound counts nothing (LIF, ADD)
            measured["ratio"] = round(measured["cycles"] / bound, 4) if bound else None
            layers.append({**layer, "rtl": measured})
        rows = merge_layers(rows, layers)
        totals.update({key: sum(layer["rtl"][key] for layer in layers)
                       for key in RTL_KEYS[:3]})
        totals["mismatches"] = run["mismatches"]
        totals["ratio"] = round(totals["cycles"] / max(totals["bound_cycles"], 1), 4)
    return {**out, **totals, "layers": rows}
