"""``spikeforge report``: per-layer spikes, SOPs, firing rates and energy of one inference,
with every layer of the compiled program run on the accelerator's RTL (through its host port)
and checked against the accelerator's golden model bit for bit."""

import os

import click

from ..errors import UserError, as_user_error
from .common import Integer, echo_table, emit, json_option
from .compile import config_option


@click.command("report")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Model file [default: the shipped golden/models/default.npz].")
@click.option("--sample", type=Integer(0), default=0, show_default=True,
              help="Index of the digits test sample to run.")
@config_option
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator",
              show_default=True, help="The simulator of the accelerator's RTL.")
@click.option("--rtl/--no-rtl", default=True, show_default=True,
              help="Run every layer on the accelerator's RTL for measured cycles and a "
                   "bit-exact check; --no-rtl reports the golden figures only.")
@json_option
def command(model_path, sample, config_name, simulator, rtl, as_json):
    """Per-layer figures of one inference of a model on the digits test split.

    Every layer gets what the golden integer model counts: spikes in, SOPs, dense-equivalent ops
    and energy (0.9 pJ per SOP; the real-input stem as MACs at 4.6 pJ) or, for neuron layers, the
    firing rate. With --rtl the model is compiled for --config and every layer of the program
    runs alone on the accelerator's RTL (--simulator, driven only through its host port), its
    output read back and compared with the accelerator's golden model: the report shows the
    cycles the sequencer counted, the compiler's bound and their ratio, and fails (exit 1) if
    any layer output differs.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from spikeforge.compiler import compile_model
    from spikeforge.golden.data import load_digits
    from spikeforge.golden.modelfile import load_model
    from spikeforge.verif.layer_rtl import inference_report

    model = load_model(model_path)
    if not model.spike_driven:
        raise UserError(f"model {model.path} ({model.config.arch}) is float-only: it is not "
                        "spike-driven and cannot run on the accelerator")
    _, test = load_digits()
    if not 0 <= sample < len(test):
        raise UserError(f"--sample must be in 0..{len(test) - 1}, not {sample}")
    model.check_images(test.images)
    compiled = compile_model(model, config_name)
    with as_user_error(RuntimeError):        # the RTL run failed (a build error, a hang)
        out = inference_report(model, compiled, test.images[sample:sample + 1], rtl=rtl,
                               simulator=simulator)
    out.update(sample=sample, label=int(test.labels[sample]))
    if as_json:
        emit(out, True)
    else:
        print_report(out)
    if out["mismatches"]:
        raise SystemExit(1)


def print_report(out):
    """The report as a text table."""
    where = (f"on the {out['config']} accelerator RTL ({out['simulator']})" if out["simulator"]
             else "golden figures only")
    click.echo(f"{out['arch']} T={out['time_steps']} sample {out['sample']} (label "
               f"{out['label']}, predicted {out['predicted']}), {where}")

    def number(row, key, form="{:.0f}"):
        return form.format(row[key]) if row.get(key) is not None else None

    rows = []
    for row in out["layers"]:
        cells = [row["name"], row["op"], number(row, "spikes_in"), number(row, "sops"),
                 number(row, "energy_pj", "{:.1f}"), number(row, "firing_rate", "{:.3f}")]
        if "cycles" in row:
            cells += [number(row, "cycles"), number(row, "bound_cycles"),
                      number(row, "ratio", "{:.2f}"),
                      "match" if not row["mismatches"] else f"{row['mismatches']} MISMATCHES"]
        rows.append(cells)
    echo_table(["layer", "op", "spikes in", "SOPs", "energy pJ", "rate", "cycles", "bound",
                "ratio", "RTL"], rows, align="llrrrrrrrl")
    click.echo(f"total: {out['sops']:.0f} SOPs, {out['energy_uj']:.4f} uJ"
               + (f", {out['cycles']:.0f} cycles on the RTL, layer by layer (bound "
                  f"{out['bound_cycles']:.0f}, ratio {out['ratio']:.2f}), {out['mismatches']} "
                  "mismatches" if out["cycles"] is not None else ""))
