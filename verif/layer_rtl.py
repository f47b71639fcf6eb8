"""One inference, layer by layer, on the accelerator's RTL (``spikeforge report``).

The golden integer model (:mod:`spikeforge.golden.integer_model`) gives every layer's spikes,
SOPs, energy and firing rate; with ``rtl`` the compiled program runs on the whole accelerator
design (the ``accelerator`` unit for the compiled configuration, in the cocotb system testbench,
driven only through its host port: :func:`~.bench_accelerator.run_rtl` in ``layers`` mode).
Each layer runs alone (START i, i + 1), its output is read back and compared with the
accelerator's golden model, and its cycles are the sequencer's counter for that descriptor.
The first LIF layer's membranes memory is read back after every step too (the layer rewritten
over the host port with fewer steps for the steps before the last), next to the golden model's
membranes step by step (:func:`membrane_trace`).

The caller compiles (this package does not import the compiler): ``compiled`` is what
``spikeforge.compiler.compile_model`` returns for the model.
"""

import numpy as np

from spikeforge.golden.accelerator import Accelerator
from spikeforge.golden.energy import E_AC_PJ, E_MAC_PJ, Counter, ann_macs
from spikeforge.golden.integer_model import layer_outputs, run_program
from spikeforge.golden.lif import lif_int

from .bench_accelerator import run_rtl

__all__ = ["inference_report", "cost_model", "merge_layers", "membrane_trace",
           "rtl_membranes", "spike_raster"]

#: The RTL figures a row of the report takes from the run.
RTL_KEYS = ("cycles", "bound_cycles", "model_cycles", "mismatches")
#: Neurons whose membranes the trace shows step by step.
TRACE_NEURONS = 4
#: Neurons per LIF layer in the spike raster (evenly spaced over the layer's neurons).
RASTER_NEURONS = 48


def spike_raster(model, image, *, neurons=RASTER_NEURONS):
    """The golden integer model's spikes of every LIF layer on ``image`` (int ``(1, C, H,
    W)``): ``[{"layer", "neurons"`` (the layer's count), ``"shown"`` (indices into its
    flattened ``(C, H, W)`` neurons), ``"spikes"`` (``[shown neuron][t]``, 0/1)``}]``."""
    outputs = layer_outputs(model, image)
    out = []
    for layer in model.layers:
        if layer["op"] != "lif":
            continue
        s = outputs[layer["name"]][:, 0].flatten(1).numpy()      # (T, neurons)
        shown = np.linspace(0, s.shape[1] - 1, min(neurons, s.shape[1])).round().astype(int)
        out.append({"layer": layer["name"], "neurons": int(s.shape[1]),
                    "shown": shown.tolist(), "spikes": s[:, shown].T.astype(int).tolist()})
    return out


def membrane_trace(model, image, name, *, neurons=TRACE_NEURONS):
    """The golden integer model's membranes of LIF layer ``name`` on ``image`` (int ``(1, C,
    H, W)``): ``{"layer", "threshold" (θ·2^F, the membrane's units), "membranes"`` (every
    neuron's membrane after each step, int ``(T, H·W, C)``: step, token, channel), ``"neurons"`` (``[token,
    channel]`` of up to ``neurons`` neurons, as many spike counts as there are, most first),
    ``"golden"`` (their membranes after each step ``t``, ``[neuron][t]``) and ``"spikes"``
    (their spikes ``[neuron][t]``)``}``."""
    layer = next(lay for lay in model.layers if lay["name"] == name)
    outputs = layer_outputs(model, image)
    x = outputs[layer["input"]]
    x = x.expand(model.time_steps, *x.shape[1:]) if x.shape[0] != model.time_steps else x
    x = x[:, 0].flatten(2).transpose(1, 2)               # (T, tokens, C)
    params = dict(threshold=int(layer["threshold"]), tau_log2=layer["tau_log2"],
                  frac_bits=layer["frac_bits"], reset=layer["reset"],
                  membrane_bits=layer["membrane_bits"])
    steps = [lif_int(x[:t + 1], return_membrane=True, **params) for t in range(len(x))]
    spikes = steps[-1][0].numpy()                         # (T, tokens, C)
    membranes = np.stack([v.numpy() for _, v in steps])   # (T, tokens, C)
    counts = spikes.sum(axis=0)
    chosen, seen = [], set()
    for flat in np.argsort(-counts, axis=None, kind="stable"):
        token, channel = np.unravel_index(flat, counts.shape)
        if counts[token, channel] not in seen and len(chosen) < neurons:
            seen.add(counts[token, channel])
            chosen.append([int(token), int(channel)])
    return {"layer": name, "threshold": int(layer["threshold"]) << layer["frac_bits"],
            "membranes": membranes,
            "neurons": chosen,
            "golden": [membranes[:, n, c].tolist() for n, c in chosen],
            "spikes": [spikes[:, n, c].astype(int).tolist() for n, c in chosen]}


def rtl_membranes(rows, tokens, lanes):
    """The RTL's membranes memory ``rows`` (lane lists; row ``n * G + g`` holds channels ``g *
    lanes ...`` of token ``n``, ``G`` rows per token) as int ``(tokens, G * lanes)``."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows.reshape(tokens, len(rows) // tokens * lanes)


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


def cost_model(compiled, image):
    """``[{"bound_cycles", "model_cycles"}]`` per layer of ``compiled`` on ``image``: the
    accelerator's golden model's bound and cost model (what the RTL is measured against)."""
    run = Accelerator(compiled.config, compiled.images).run(image)
    return [{"bound_cycles": int(b), "model_cycles": int(c)}
            for b, c in zip(run.bound, run.cycles)]


def inference_report(model, compiled, image, *, rtl=True, simulator="verilator"):
    """Per-layer figures of one inference of ``model`` (a loaded model file) on ``image`` (int
    ``(1, C, H, W)``). With ``rtl``, the rows of the layers of ``compiled`` add what the RTL
    measured (:data:`RTL_KEYS`, ``ratio``); the totals are sums over those layers. The
    ``report`` command prints the returned dict (``docs/report.md``); without ``rtl`` those
    rows carry the :func:`cost_model` figures only (``bound_cycles``, ``model_cycles``; no
    ``cycles``) and so do the totals; ``membrane`` is the
    :func:`membrane_trace` of the program's first LIF layer (without ``membranes``) plus
    ``rtl`` (the RTL's read-back membranes of the traced neurons after each step,
    ``[neuron][t]``, ``None`` without ``rtl``) and ``rtl_mismatches`` (membranes of the layer,
    over every neuron and step, whose read-back value differs); ``raster`` is the
    :func:`spike_raster`."""
    counter = Counter()
    logits = run_program(model, image, counter=counter)
    summary = counter.summary(ann_macs=ann_macs(model.float_model()))
    rows = summary["layers"]
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
        "macs": summary["macs_per_inference"], "ann_macs": summary["ann_macs_per_inference"],
        "energy_uj_ann": round(summary["energy_uj_ann"], 6),
    }
    lif = next(i for i, layer in enumerate(compiled.layers) if layer["op"] == "lif")
    trace = membrane_trace(model, image, compiled.layers[lif]["name"])
    golden = trace.pop("membranes")                       # (T, tokens, C)
    trace.update(rtl=None, rtl_mismatches=None)
    totals = dict.fromkeys(("cycles", "bound_cycles", "model_cycles", "mismatches", "ratio"))
    if not rtl:         # the cost model's figures of the compiled program, nothing measured
        layers = [{**layer, "rtl": figures}
                  for layer, figures in zip(compiled.layers, cost_model(compiled, image))]
        rows = merge_layers(rows, layers)
        totals.update({key: sum(layer["rtl"][key] for layer in layers)
                       for key in ("bound_cycles", "model_cycles")})
    else:
        run = run_rtl(compiled, image.numpy(), simulator=simulator, mode="layers",
                      in_idle=0.0, out_stall=0.0, membranes=(lif + 1,))
        if "failure" in run:
            raise RuntimeError(f"the RTL run failed: {run['failure']}")
        read = run.get("membranes", {}).get(str(lif + 1))
        if read is not None:
            tokens, channels = golden.shape[1:]
            got = np.stack([rtl_membranes(rows, tokens, compiled.config.lanes)[:, :channels]
                            for rows in read])                  # (T, tokens, C)
            trace["rtl"] = [got[:, n, c].tolist() for n, c in trace["neurons"]]
            trace["rtl_mismatches"] = int((got != golden).sum()) if got.shape == golden.shape \
                else int(golden.size)
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
    return {**out, **totals, "layers": rows, "membrane": trace,
            "raster": spike_raster(model, image)}
