"""The ``report`` page's plots (matplotlib, Agg backend), each drawn from the page's figures
(:func:`spikeforge.verif.layer_rtl.inference_report` plus ``engine_sweep``) and returned as
PNG bytes; :data:`PLOTS` names them in the page's order."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

__all__ = ["PLOTS", "render_plots"]


def _png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def raster(page):
    """Spikes of one sample through the LIF layers: one band of neurons per layer, x = step."""
    bands = page["raster"]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.32 * len(bands))))
    ticks = []
    for k, band in enumerate(bands):
        rows = len(band["spikes"])
        for j, train in enumerate(band["spikes"]):
            steps = [t for t, s in enumerate(train) if s]
            y = k + j / rows
            ax.scatter(steps, [y] * len(steps), marker="|", s=30, color=f"C{k % 10}")
        ticks.append(k + 0.5)
    ax.set_yticks(ticks, [band["layer"] for band in bands], fontsize=7)
    ax.set_xticks(range(page["time_steps"]))
    ax.set_xlim(-0.5, page["time_steps"] - 0.5)
    ax.set_ylim(len(bands), 0)
    ax.set_xlabel("time step")
    ax.set_title(f"spike raster, test sample {page['sample']} (golden integer model, "
                 f"{len(bands[0]['spikes']) if bands else 0} neurons per layer)", fontsize=9)
    return _png(fig)


def firing_rates(page):
    """Firing rate of every LIF layer."""
    rows = [row for row in page["layers"] if row["op"] == "lif"]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(range(len(rows)), [row["firing_rate"] for row in rows], color="C1")
    ax.set_xticks(range(len(rows)), [row["name"] for row in rows], rotation=90, fontsize=7)
    ax.set_ylabel("spikes / (neurons × T)")
    ax.set_title("firing rate per LIF layer (golden integer model)", fontsize=9)
    return _png(fig)


def cycles(page):
    """Cycles of every layer: measured on the RTL (when it ran), the accelerator golden
    model's cost model and the compiler's bound."""
    rows = [row for row in page["layers"] if "model_cycles" in row]
    measured = any("cycles" in row for row in rows)
    bars = ([("cycles", "RTL cycles")] if measured else []) + [
        ("model_cycles", "cost model"), ("bound_cycles", "bound (0: not counted)")]
    fig, ax = plt.subplots(figsize=(8, 3))
    x = range(len(rows))
    width = 0.8 / len(bars)
    for k, (key, label) in enumerate(bars):
        offset = (k - (len(bars) - 1) / 2) * width
        ax.bar([i + offset for i in x], [row[key] for row in rows], width, label=label,
               color=f"C{k}")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xticks(list(x), [row["name"] for row in rows], rotation=90, fontsize=7)
    ax.legend(fontsize=8)
    where = ("on the RTL, layer by layer" if measured
             else "counted by the golden model (--no-rtl: RTL not run)")
    ax.set_title(f"cycles per layer of the {page['config']} program, {where}", fontsize=9)
    return _png(fig)


def membrane(page):
    """The golden membranes of a few neurons over the steps (lines), the RTL's read-back
    membranes after each step on top (crosses)."""
    trace = page["membrane"]
    fig, ax = plt.subplots(figsize=(8, 3))
    steps = range(page["time_steps"])
    for k, ((token, channel), values) in enumerate(zip(trace["neurons"], trace["golden"])):
        ax.plot(steps, values, "o-", color=f"C{k}",
                label=f"golden, token {token} channel {channel}")
        if trace["rtl"] is not None:
            ax.plot(steps[:len(trace["rtl"][k])], trace["rtl"][k], "x", color="k",
                    markersize=10, markeredgewidth=2, label="RTL read-back" if k == 0 else None)
    ax.axhline(trace["threshold"], color="grey", linestyle="--", label="threshold θ·2^F")
    ax.set_xticks(list(steps))
    ax.set_xlabel("time step (membrane after the step, after reset)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    where = ("RTL: the membranes memory read back after each step" if trace["rtl"] is not None
             else "RTL not run")
    ax.set_title(f"membranes of {trace['layer']} ({where})", fontsize=9)
    return _png(fig)


def engine_sweep(page):
    """The engine's counted sparsity sweep: bound cycles and dense-equivalent cycles against
    the input firing rate."""
    points = page["engine_sweep"]
    fig, ax = plt.subplots(figsize=(8, 3))
    for k, name in enumerate(dict.fromkeys(p["layer"] for p in points)):
        mine = [p for p in points if p["layer"] == name]
        ax.plot([p["rate"] for p in mine], [p["bound_cycles"] for p in mine], "o-",
                color=f"C{k}", label=f"{name}: bound cycles")
        ax.axhline(mine[0]["dense_bound_cycles"], color=f"C{k}", linestyle=":",
                   label=f"{name}: every bit set")
    ax.set_xlabel("input firing rate")
    ax.set_ylabel("cycles")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("engine sparsity sweep (counted: analytic bound, not simulated)", fontsize=9)
    return _png(fig)


#: ``(key, caption, plot function)`` in the page's order.
PLOTS = (
    ("raster", "Spike raster", raster),
    ("firing_rates", "Firing rate per layer", firing_rates),
    ("cycles", "Cycles per layer against the bound", cycles),
    ("membrane", "Membrane trace", membrane),
    ("engine_sweep", "Engine sparsity sweep", engine_sweep),
)


def render_plots(page):
    """``{key: PNG bytes}`` of every plot of :data:`PLOTS`."""
    return {key: plot(page) for key, _, plot in PLOTS}
