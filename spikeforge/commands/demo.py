"""``spikeforge demo`` (``make demo``): the main job on the shipped model, start to end, with
one short summary and the report page."""

import os
from pathlib import Path

import click

from ..errors import UserError, as_user_error
from ..progress import progress_bar
from .common import Integer, emit, json_option

#: The accelerator configuration and simulator of the demo (the board's configuration; the
#: whole design on Icarus takes about half an hour layer by layer, `spikeforge report`).
DEMO_CONFIG, DEMO_SIMULATOR = "ulx3s-85f", "verilator"
#: The device the demo synthesizes the accelerator for.
DEMO_DEVICE = "ecp5-85k"
#: Where the report page goes (under the build folder).
DEMO_FOLDER = "demo"


@click.command("demo")
@click.option("--sample", type=Integer(0), default=0, show_default=True,
              help="Digits test sample whose layers run one by one on the accelerator RTL.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Folder of the report page [default: build/demo].")
@json_option
def command(sample, output, as_json):
    """The main job, end to end, on the shipped model (golden/models/default.npz).

    \b
    1. The model compiled for the ULX3S configuration (ulx3s-85f).
    2. Test sample --sample with every layer of the program alone on the accelerator's RTL
       (Verilator, through its host port only): cycles per layer against the bound, each
       output compared with the accelerator's golden model, the membranes read back.
    3. The accuracy of the float model, the golden integer model and the accelerator's golden
       model on the whole test split, and of the RTL (whole inferences, start to done) on the
       first 8 test samples.
    4. The report page (`spikeforge report -o`), with the resources and Fmax of every unit as
       `spikeforge synth table` recorded them (docs/resources.md).
    5. The accelerator through Yosys for ECP5-85 (cached under build/synth): LUT, FF, EBR,
       DSP. Its Fmax is the recorded one: the whole design's place and route takes about 20
       minutes, longer than the demo.
    Then one short summary and the page's path.

    Exits 1 if any output differs from the golden model.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from spikeforge.compiler import compile_model
    from spikeforge.golden.data import load_digits
    from spikeforge.golden.modelfile import load_model
    from spikeforge.verif.layer_rtl import inference_report
    from spikeforge.verif.toolchain import BUILD_ROOT
    from .report import write_page

    _, test = load_digits()
    if sample >= len(test):
        raise UserError(f"--sample must be in 0..{len(test) - 1}, not {sample}")
    folder = Path(output) if output else BUILD_ROOT / DEMO_FOLDER
    steps = ["compile", f"sample {sample}: every layer on the RTL", "accuracies, RTL and report",
             "the accelerator through Yosys for ECP5-85"]
    with progress_bar(total=len(steps), show=not as_json, desc="demo", unit="step") as bar:
        bar.set_postfix_str(steps[0])
        model = load_model(None)
        compiled = compile_model(model, DEMO_CONFIG)
        bar.update()
        bar.set_postfix_str(steps[1])
        with as_user_error(RuntimeError):
            report = inference_report(model, compiled, test.images[sample:sample + 1],
                                      simulator=DEMO_SIMULATOR)
        report.update(sample=sample, label=int(test.labels[sample]))
        bar.update()
        bar.set_postfix_str(steps[2])
        page = write_page(folder, report, model, compiled, test, rtl=True,
                          simulator=DEMO_SIMULATOR)
        bar.update()
        bar.set_postfix_str(steps[3])
        cells = _synthesize(compiled.config.name)
        bar.update()
    summary = {**_summary(page), "synthesis": cells}
    if as_json:
        emit(summary, True)
    else:
        for line in _lines(summary):
            click.echo(line)
    if summary["mismatches"]:
        raise SystemExit(1)


def _synthesize(config):
    """The accelerator of ``config`` through Yosys for ECP5-85 (cached): its LUT/FF/EBR/DSP."""
    from spikeforge.hdl.accelerator.core import Accelerator
    from spikeforge.synth.flow import SynthesisError, synthesize_cells
    with as_user_error(SynthesisError):
        cells = synthesize_cells("accelerator", lambda: Accelerator(config), device=DEMO_DEVICE)
    return {key: cells[key] for key in ("lut", "ff", "bram", "dsp", "seconds")}


def _summary(page):
    """The demo's figures from the report page's."""
    rtl = page["accuracy"]["rtl"]
    table = page["resources"]["table"] or {"header": [], "rows": []}
    accelerator = next((dict(zip(table["header"], row)) for row in table["rows"]
                        if row and row[0] == "accelerator"), {})
    mismatches = (page["mismatches"] + (page["membrane"]["rtl_mismatches"] or 0)
                  + (rtl["mismatches"] or 0) + (page["accuracy"]["accelerator"]["mismatches"]
                                                or 0))
    return {
        "model": page["model"], "config": page["config"], "simulator": page["simulator"],
        "float_accuracy": page["float_accuracy"], "golden_accuracy": page["golden_accuracy"],
        "accelerator_accuracy": page["accelerator_accuracy"],
        "rtl_accuracy": page["rtl_accuracy"], "test_samples": page["accuracy"]["golden"]["samples"],
        "rtl_samples": rtl["samples"], "mismatches": mismatches,
        "cycles_per_inference": rtl["cycles_per_inference"],
        "bound_cycles": rtl["bound_cycles"],
        "layer_cycles": page["cycles"], "layer_bound_cycles": page["bound_cycles"],
        "energy_uj": page["energy_uj"], "resources": accelerator,
        "page": page["page"], "json": page["json"],
    }


def _lines(s):
    def percent(value):
        return "-" if value is None else f"{100 * value:.2f} %"

    r = s["resources"]
    ratio = (s["cycles_per_inference"] / s["bound_cycles"]
             if s["cycles_per_inference"] and s["bound_cycles"] else None)
    yield (f"accuracy: float {percent(s['float_accuracy'])}, integer "
           f"{percent(s['golden_accuracy'])}, accelerator model "
           f"{percent(s['accelerator_accuracy'])} ({s['test_samples']} test samples); RTL "
           f"{percent(s['rtl_accuracy'])} ({s['rtl_samples']} samples, {s['simulator']})")
    yield f"mismatches against the golden model: {s['mismatches']}"
    if ratio is not None:
        yield (f"cycles per inference on the RTL: {s['cycles_per_inference']:.0f} (bound "
               f"{s['bound_cycles']:.0f}, {ratio:.2f}x)")
    yield f"energy per inference: {s['energy_uj']:.3f} uJ (0.9 pJ/SOP, 4.6 pJ/MAC, 45 nm)"
    cells = s.get("synthesis")
    if cells:
        yield (f"{s['config']} through Yosys for ECP5-85: {cells['lut']} LUT4, {cells['ff']} FF, "
               f"{cells['bram']} EBR, {cells['dsp']} DSP")
    if r:
        fmax = r.get("ecp5-85k Fmax", "")
        numeric = fmax.replace(".", "", 1).isdigit()
        fmax = f"{fmax} MHz" if numeric else fmax.replace(" (", " MHz (", 1)
        yield (f"Fmax as recorded in docs/resources.md: {fmax} (the whole design's place and "
               "route takes about 20 minutes, not run by the demo)")
    yield f"report: {s['page']}"
