"""``spikeforge report``: per-layer spikes, SOPs, firing rates, energy and engine cycles of one
inference, with every conv/linear layer run on the engine RTL and checked against the golden
integer model bit for bit."""

import os

import click

from ..errors import UserError, as_user_error
from .common import Integer, check_unit, echo_table, emit, json_option


@click.command("report")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Model file [default: the shipped golden/models/default.npz].")
@click.option("--sample", type=Integer(0), default=0, show_default=True,
              help="Index of the digits test sample to run.")
@click.option("--lanes", type=Integer(1), default=16, show_default=True,
              help="Engine adder lanes P (as many as the engine unit allows).")
@click.option("--layers", "patterns", default="*", show_default=True, metavar="GLOB[,GLOB]",
              help="Run only the conv/linear layers whose names match (e.g. 's1.*,head.fc').")
@click.option("--rtl/--no-rtl", default=True, show_default=True,
              help="Run the matched layers on the engine RTL (Amaranth simulator) for measured "
                   "cycles and a bit-exact check; --no-rtl reports the golden figures only.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@json_option
def command(model_path, sample, lanes, patterns, rtl, no_progress, as_json):
    """Per-layer figures of one inference of a model on the digits test split.

    Every layer gets what the golden integer model counts: spikes in, SOPs, dense-equivalent ops
    and energy (0.9 pJ per SOP; the real-input stem as MACs at 4.6 pJ) or, for neuron layers, the
    firing rate. With --rtl each conv/linear layer matching --layers also runs on a SpikeEngine of
    P lanes built for its shape, fed the exact spikes the golden model gave it: the report shows
    measured cycles, the analytic bound max(events, tokens) x ceil(C_out/P) and their ratio, and
    fails (exit 1) if any output beat differs from the golden op. Attention layers run on the
    golden model only here (see `spikeforge sim sdsa` and `spikeforge bench sdsa`).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from spikeforge.golden.data import load_digits
    from spikeforge.golden.modelfile import load_model
    from spikeforge.verif.layer_rtl import inference_report

    if rtl:
        check_unit("engine", {"lanes": lanes}, option="--lanes")
    model = load_model(model_path)
    if not model.spike_driven:
        raise UserError(f"model {model.path} ({model.config.arch}) is float-only: it is not "
                        "spike-driven and cannot run on the accelerator")
    _, test = load_digits()
    if not 0 <= sample < len(test):
        raise UserError(f"--sample must be in 0..{len(test) - 1}, not {sample}")
    model.check_images(test.images)

    # --layers matching no layer, or a layer the engine has no mode for (named), is refused
    with as_user_error(ValueError):
        out = inference_report(model, test.images[sample:sample + 1], lanes=lanes,
                               patterns=patterns, rtl=rtl, progress=not (no_progress or as_json))
    out.update(sample=sample, label=int(test.labels[sample]))
    if as_json:
        emit(out, True)
    else:
        print_report(out)
    if out["mismatches"]:
        raise click.exceptions.Exit(1)


def print_report(out):
    """The report as a text table."""
    click.echo(f"{out['arch']} T={out['time_steps']} sample {out['sample']} (label "
               f"{out['label']}, predicted {out['predicted']}), engine P={out['lanes']}")
    rows = []
    for row in out["layers"]:
        if row["op"] == "lif":
            rows.append([row["name"], "lif", None, None, None, f"{row['firing_rate']:.3f}"])
            continue
        cells = [row["name"], row.get("kind", row["op"]), f"{row['spikes_in']:.0f}",
                 f"{row['sops']:.0f}", f"{row['energy_pj']:.1f}", None]
        if "cycles" in row:
            cells += [row["cycles"], row["bound_cycles"], f"{row['ratio']:.2f}",
                      "match" if not row["mismatches"] else f"{row['mismatches']} MISMATCHES"]
        rows.append(cells)
    echo_table(["layer", "op", "spikes in", "SOPs", "energy pJ", "rate", "cycles", "bound",
                "ratio", "RTL"], rows, align="llrrrrrrrl")
    click.echo(f"total: {out['sops']:.0f} SOPs, {out['energy_uj']:.4f} uJ"
               + (f", {out['cycles']} cycles on the engine (bound {out['bound_cycles']}, "
                  f"ratio {out['ratio']:.2f}), {out['mismatches']} mismatches"
                  if out["cycles"] is not None else ""))
