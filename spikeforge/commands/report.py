"""``spikeforge report``: per-layer spikes, SOPs, firing rates and energy of one inference,
with every layer of the compiled program run on the accelerator's RTL (through its host port)
and checked against the accelerator's golden model bit for bit; with ``-o DIR``, the same and
the accuracies, energy, resources and plots as a self-contained HTML page and its JSON."""

import json
import os
from pathlib import Path

import click

from ..errors import UserError, as_user_error
from .common import Integer, echo_table, emit, json_option
from .compile import config_option, run_accelerator_command

#: Most test samples the page's RTL accuracy runs (whole inferences on the simulated RTL).
RTL_ACCURACY_SAMPLES = 8


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
@click.option("--output", "-o", "output", type=click.Path(file_okay=False), default=None,
              help="Write DIR/report.html (self-contained) and DIR/report.json: the per-layer "
                   "figures plus accuracies, energy, resources and plots.")
@click.option("--samples", type=Integer(1), default=None,
              help="-o only: first N test samples for the accuracy table [default: all]; the "
                   f"RTL's accuracy over at most {RTL_ACCURACY_SAMPLES} of them.")
@json_option
def command(model_path, sample, config_name, simulator, rtl, output, samples, as_json):
    """Per-layer figures of one inference of a model on the digits test split.

    Every layer gets what the golden integer model counts: spikes in, SOPs, dense-equivalent ops
    and energy (0.9 pJ per SOP; the real-input stem as MACs at 4.6 pJ) or, for neuron layers, the
    firing rate. With --rtl the model is compiled for --config and every layer of the program
    runs alone on the accelerator's RTL (--simulator, driven only through its host port), its
    output read back and compared with the accelerator's golden model: the report shows the
    cycles the sequencer counted, the compiler's bound and their ratio, and fails (exit 1) if
    any layer output, or the first LIF layer's membranes read back, differ.

    -o DIR also writes the report page (docs/report.md): accuracy of the float, golden,
    accelerator-golden and RTL backends over --samples, energy next to a dense ANN, the
    recorded resources and Fmax, and plots; it prints the page's path (--json: the page's
    JSON instead).
    """
    if samples is not None and output is None:
        raise click.UsageError("--samples applies only with -o/--output")
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
    if output is not None:
        out = write_page(Path(output), out, model, compiled, test.head(samples), rtl=rtl,
                         simulator=simulator)
    if as_json:
        emit(out, True)
    else:
        print_report(out)
        if output is not None:
            click.echo(out["page"])
    if out["mismatches"] or out["membrane"]["rtl_mismatches"] or out.get("rtl_mismatches"):
        raise SystemExit(1)


def accuracies(model, compiled, test, *, rtl, simulator):
    """``{backend: {"accuracy", "samples"[, "mismatches"]}}`` for float, golden, accelerator
    (the compiled program on its golden model) and rtl (whole inferences on the simulated
    RTL, at most :data:`RTL_ACCURACY_SAMPLES`, with their mean ``cycles_per_inference``
    start to done and ``bound_cycles``; accuracy ``None`` without ``rtl``)."""
    from spikeforge.golden.integer_model import evaluate
    from spikeforge.golden.train import evaluate as evaluate_float
    from spikeforge.verif.bench_accelerator import run_rtl

    accelerator = run_accelerator_command(model, test, config_name=compiled.config.name,
                                          show_progress=False)
    out = {"float": {"accuracy": evaluate_float(model.float_model(), test)},
           "golden": {"accuracy": evaluate(model, test, backend="golden")},
           "accelerator": {"accuracy": accelerator["accuracy"],
                           "mismatches": accelerator["mismatches"]}}
    for entry in out.values():
        entry["samples"] = len(test)
    out["rtl"] = {"accuracy": None, "samples": None, "mismatches": None}
    if rtl:
        head = test.head(min(len(test), RTL_ACCURACY_SAMPLES))
        with as_user_error(RuntimeError):
            run = run_rtl(compiled, head.images.numpy(), head.labels.numpy(),
                          simulator=simulator, mode="whole", in_idle=0.0, out_stall=0.0)
        if "failure" in run:
            raise UserError(f"the RTL run failed: {run['failure']}")
        out["rtl"] = {key: run[key] for key in ("accuracy", "samples", "mismatches",
                                                "cycles_per_inference", "bound_cycles")}
    return out


def write_page(folder, report, model, compiled, test, *, rtl, simulator):
    """Write ``folder``/report.html and report.json from the :func:`inference_report`
    ``report`` and return the page's figures (``report`` plus the accuracies, ``resources``,
    ``engine_sweep``, ``page`` and ``json``: the files' paths)."""
    from spikeforge.synth.recorded import read_baselines, read_table
    from spikeforge.verif.engine_sweep import counted_sweep
    from spikeforge.verif.report_page import render_html
    from spikeforge.verif.report_plots import render_plots
    from spikeforge.verif.toolchain import PROJECT_ROOT

    accuracy = accuracies(model, compiled, test, rtl=rtl, simulator=simulator)
    page = {**report, "accuracy": accuracy,
            **{f"{key}_accuracy": entry["accuracy"] for key, entry in accuracy.items()},
            "rtl_mismatches": accuracy["rtl"]["mismatches"],
            "resources": {"table": read_table(PROJECT_ROOT / "docs" / "resources.md"),
                          "baselines": read_baselines()},
            "engine_sweep": counted_sweep()}
    folder.mkdir(parents=True, exist_ok=True)
    page.update(page=str(folder / "report.html"), json=str(folder / "report.json"))
    (folder / "report.html").write_text(render_html(page, render_plots(page)))
    (folder / "report.json").write_text(json.dumps(page, indent=1))
    return page


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
                  "mismatches" if out["cycles"] is not None else
                  f", {out['model_cycles']:.0f} cycles by the cost model (bound "
                  f"{out['bound_cycles']:.0f}; RTL not run)" if out["model_cycles"] is not None
                  else ""))
    trace = out["membrane"]
    if trace["rtl_mismatches"] is not None:
        click.echo(f"membranes of {trace['layer']} read back from the RTL after each step: "
                   f"{trace['rtl_mismatches']} differ from the golden model's")
