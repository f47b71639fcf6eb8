"""``spikeforge demo``: the end-to-end job as far as the project goes, saying what it does."""

import os

import click

from ..errors import UserError
from .common import Integer, emit, json_option, simulator_option

#: The accelerator configuration and simulator of step 3 (Verilator: a few minutes; the whole
#: design on Icarus takes about half an hour layer by layer, `spikeforge report --simulator`).
DEMO_CONFIG, DEMO_SIMULATOR = "ulx3s-85f", "verilator"


@click.command("demo")
@simulator_option
@click.option("--sample", type=Integer(0), default=0, show_default=True,
              help="Digits test sample whose layers run on the accelerator RTL.")
@json_option
def command(simulator, sample, as_json):
    """The main job, end to end, on the shipped model.

    1. Every unit's randomized testbench once against its golden function (cocotb).
    2. The shipped model (golden/models/default.npz) on the whole digits test split with the
       golden integer model: accuracy, SOPs and energy per inference.
    3. One test sample with every layer of the compiled program on the accelerator's RTL
       (the ULX3S configuration, Verilator, through its host port): cycles per layer against
       the bound, bit-exact check against the accelerator's golden model (`spikeforge report`
       does any model, configuration and simulator).

    Exits 1 if any output differs from the golden model.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from spikeforge.compiler import compile_model
    from spikeforge.golden.data import load_digits
    from spikeforge.golden.energy import Counter, ann_macs
    from spikeforge.golden.integer_model import evaluate
    from spikeforge.golden.modelfile import load_model
    from spikeforge.verif.layer_rtl import inference_report
    from spikeforge.verif.runner import simulate
    from spikeforge.verif.units import UNITS
    from .report import print_report

    _, test = load_digits()
    if sample >= len(test):
        raise UserError(f"--sample must be in 0..{len(test) - 1}, not {sample}")
    say = (lambda text: None) if as_json else click.echo
    say(f"1. unit testbenches on {simulator}, random stimulus and stalls, against the golden model")
    units = []
    for name in UNITS:
        result = simulate(name, simulator=simulator, seed=1)
        units.append(result.as_dict())
        say(f"   {name}: {result.checked} outputs checked, {result.mismatches} mismatches, "
            f"{result.cycles} cycles")

    model = load_model(None)
    counter = Counter()
    accuracy = evaluate(model, test, backend="golden", counter=counter)
    summary = counter.summary(ann_macs=ann_macs(model.float_model()))
    say(f"2. shipped model {model.config.arch} T={model.time_steps}, golden integer model: "
        f"accuracy {100 * accuracy:.2f} % on {len(test)} test samples; "
        f"{summary['sops_per_inference']:.0f} SOPs and {summary['energy_uj_snn']:.3f} uJ per "
        f"inference (dense ANN {summary['energy_uj_ann']:.3f} uJ)")

    say(f"3. test sample {sample}: every layer on the {DEMO_CONFIG} accelerator RTL "
        f"({DEMO_SIMULATOR}, host port only)")
    report = inference_report(model, compile_model(model, DEMO_CONFIG),
                              test.images[sample:sample + 1], simulator=DEMO_SIMULATOR)
    report.update(sample=sample, label=int(test.labels[sample]))
    if not as_json:
        print_report(report)
    mismatches = sum(u["mismatches"] for u in units) + report["mismatches"]
    if as_json:
        emit({"units": units, "accuracy": accuracy,
              "sops_per_inference": summary["sops_per_inference"],
              "energy_uj_snn": summary["energy_uj_snn"],
              "energy_uj_ann": summary["energy_uj_ann"], "report": report,
              "mismatches": mismatches}, True)
    else:
        click.echo(f"done: {mismatches} mismatches against the golden model")
    if mismatches:
        raise click.exceptions.Exit(1)
