"""``spikeforge run``: evaluate a model file on the digits test split with the float or the golden
integer backend, with SOPs, firing rates and energy; or the compiled program on the
accelerator's golden model or on its RTL in simulation."""

import os

import click

from ..errors import UserError
from ..progress import progress_bar
from .common import Integer, echo_table, emit, json_option
from .compile import config_option, run_accelerator_command

#: Default --samples of --backend rtl (a whole inference is 10^5 simulated cycles).
RTL_SAMPLES = 4


@click.command("run")
@click.option("--backend", type=click.Choice(["float", "golden", "accelerator", "rtl", "uart"]),
              default="golden", show_default=True,
              help="float: the folded float model; golden: the integer model (the RTL's spec); "
                   "accelerator: the compiled program on the accelerator's golden model; "
                   "rtl: the compiled program on the accelerator's RTL (cocotb, host port only); "
                   "uart: on an accelerator behind a serial port (--port).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Model file [default: the shipped golden/models/default.npz].")
@click.option("--samples", type=Integer(1), default=None,
              help=f"First N test samples [default: all; {RTL_SAMPLES} for --backend rtl].")
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default=None,
              help="--backend rtl only: the simulator [default: verilator].")
@click.option("--port", default=None,
              help="--backend uart only: a serial device (/dev/ttyUSB0), a pyserial URL, or "
                   "'sim': the board (UART pins included) simulated on --simulator.")
@click.option("--baud", type=Integer(1), default=None,
              help="--backend uart only: the serial line's rate [default: 3000000].")
@click.option("--scores-only", is_flag=True,
              help="--backend uart only: read the scores, not every layer's output.")
@click.option("--waves", is_flag=True,
              help="--backend rtl only: record the simulation's signals (FST) and print the "
                   "file's path (open it with GTKWave or Surfer).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@config_option
@json_option
def command(backend, model_path, samples, simulator, port, baud, scores_only, waves,
            no_progress, as_json, config_name):
    """Evaluate a model on the digits test split.

    Prints backend, samples, accuracy, SOPs per inference, firing rate per neuron layer and the
    energy per inference as the seeds count it (0.9 pJ per SOP, 4.6 pJ per MAC, 45 nm; the stem
    counted as MACs), next to the same float network counted as a dense ANN (one pass, unfused
    layers). --json adds per-layer figures (of the deployed, fused network) under "layers",
    each with a "description" of the layer name (s1.b0.attn.q.lif: stage 1, block 0, attention,
    Q conv, LIF).

    --backend rtl simulates the accelerator (--config) on --simulator, driven only through its
    host port: every layer alone, its output against the accelerator's golden model, then the
    whole program once per sample (cycles start to done). Exits 1 on any mismatch.

    --backend uart runs the host driver against --port: the compiled model loaded, then per
    sample the input written, the whole program run, the scores, the per-layer cycles and
    (unless --scores-only) every layer's output read and compared with the accelerator's
    golden model; the JSON of --backend rtl plus the link's figures. --port sim simulates the
    board's design behind a socket (slow: the bytes cross a simulated UART).
    """
    # idle OpenMP threads sleep instead of spinning (see the train command); no effect on results
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from spikeforge.golden.data import load_digits
    from spikeforge.golden.energy import Counter, ann_macs
    from spikeforge.golden.integer_model import evaluate
    from spikeforge.golden.modelfile import load_model
    from spikeforge.golden.quantize import describe_layer
    from spikeforge.golden.train import evaluate as evaluate_float

    if simulator is not None and backend not in ("rtl", "uart"):
        raise click.UsageError("--simulator applies only to --backend rtl and uart")
    if backend == "uart" and port is None:
        raise click.UsageError("--backend uart needs --port (a serial device or 'sim')")
    if backend != "uart" and (port is not None or baud is not None or scores_only):
        raise click.UsageError("--port, --baud and --scores-only apply only to --backend uart")
    if waves and backend != "rtl":
        raise click.UsageError("--waves applies only to --backend rtl")
    if backend in ("rtl", "uart") and samples is None:
        samples = RTL_SAMPLES
    model = load_model(model_path)
    _, test = load_digits()
    model.check_images(test.images)
    test = test.head(samples)
    out = {"backend": backend, "model": str(model.path), "arch": model.config.arch,
           "time_steps": model.time_steps, "samples": len(test)}
    if backend == "accelerator":
        out.update(run_accelerator_command(model, test, config_name=config_name,
                                           show_progress=not (no_progress or as_json)))
        _echo_accelerator(out, as_json)
        return
    if backend in ("rtl", "uart"):
        if backend == "rtl":
            out.update(_run_rtl(model, test, config_name=config_name,
                                simulator=simulator or "verilator", waves=waves))
        else:
            out.update(_run_uart(model, test, config_name=config_name, port=port, baud=baud,
                                 layers=not scores_only, simulator=simulator or "verilator",
                                 show_progress=not (no_progress or as_json)))
        _echo_rtl(out, as_json)
        if out["mismatches"] or "failure" in out:
            raise SystemExit(1)
        return
    if not model.spike_driven:
        if backend == "golden":
            raise UserError(f"model {model.path} ({model.config.arch}) is float-only: it is not "
                            "spike-driven and has no integer model; use --backend float")
        rates = {}
        out["accuracy"] = evaluate_float(model.float_model(), test, rates=rates)
        out.update(sops_per_inference=None, firing_rates=rates, energy_uj_snn=None,
                   energy_uj_ann=None, layers=[])
    else:
        counter = Counter()
        with progress_bar(total=len(test), show=not (no_progress or as_json),
                          desc=f"run {backend}", unit="sample", leave=False) as bar:
            out["accuracy"] = evaluate(model, test, backend=backend, counter=counter,
                                       progress=bar.update)
        summary = counter.summary(ann_macs=ann_macs(model.float_model()))
        out.update({key: summary[key] for key in (
            "sops_per_inference", "macs_per_inference", "firing_rates", "energy_uj_snn",
            "energy_uj_ann", "ann_macs_per_inference", "layers")})
        for row in out["layers"]:
            row["description"] = describe_layer(row["name"])
    if as_json:
        emit(out, True)
        return
    click.echo(f"{out['arch']} T={out['time_steps']} backend={backend}: accuracy "
               f"{100 * out['accuracy']:.2f} % on {out['samples']} test samples")
    if out["sops_per_inference"] is None:
        click.echo("float-only model: no SOP/energy figures (not spike-driven)")
    else:
        click.echo(f"SOPs/inference {out['sops_per_inference']:.0f}, stem MACs "
                   f"{out['macs_per_inference']:.0f}; energy {out['energy_uj_snn']:.4f} uJ "
                   f"(dense ANN {out['energy_uj_ann']:.4f} uJ)")
    rows = []
    for row in out["layers"]:
        if row["op"] == "lif":
            rows.append([row["name"], "lif", None, None, None, f"{row['firing_rate']:.4f}",
                         row["description"]])
        else:
            rows.append([row["name"], row["op"], f"{row['spikes_in']:.1f}", f"{row['sops']:.0f}",
                         f"{row['dense_ops']:.0f}", None, row["description"]])
    if not out["layers"]:
        rows = [[name, "neuron", None, None, None, f"{rate:.4f}", None]
                for name, rate in out["firing_rates"].items()]
    echo_table(["layer", "op", "spikes in", "SOPs", "dense", "rate", "what"], rows,
               align="llrrrrl")


def _echo_accelerator(out, as_json):
    """Print the ``--backend accelerator`` figures."""
    if as_json:
        emit(out, True)
        return
    click.echo(f"{out['arch']} T={out['time_steps']} on {out['config']}: accuracy "
               f"{100 * out['accuracy']:.2f} % on {out['samples']} test samples, "
               f"{out['mismatches']} mismatches, {out['cycles_per_inference']:.0f} cycles per "
               f"inference (bound {out['bound_cycles']:.0f})")
    echo_table(["layer", "op", "mismatches", "bound", "cycles"],
               [[r["name"], r["op"], str(r["mismatches"]), f"{r['bound_cycles']:.0f}",
                 f"{r['cycles']:.0f}"] for r in out["layers"]], align="llrrr")


def _run_rtl(model, test, *, config_name, simulator, waves=False):
    """The ``--backend rtl`` figures (a dict) of ``model`` on ``test``."""
    from spikeforge.compiler import compile_model
    from spikeforge.verif.bench_accelerator import run_rtl

    compiled = compile_model(model, config_name)
    return run_rtl(compiled, test.images.numpy(), test.labels.numpy(), simulator=simulator,
                   waves=waves)


def _run_uart(model, test, *, config_name, port, baud, layers, simulator, show_progress):
    """The ``--backend uart`` figures (a dict) of ``model`` on ``test``."""
    from spikeforge.compiler import compile_model
    from spikeforge.driver import DEFAULT_BAUD, DriverError
    from spikeforge.verif.board_sim import BoardSimFailed
    from spikeforge.verif.uart_run import run_uart

    compiled = compile_model(model, config_name)
    with progress_bar(total=len(test), show=show_progress, desc=f"run uart {port}",
                      unit="sample", leave=False) as bar:
        try:
            return run_uart(compiled, test.images.numpy(), test.labels.numpy(), port=port,
                            baud=baud or DEFAULT_BAUD, layers=layers, simulator=simulator,
                            progress=bar.update)
        except (DriverError, BoardSimFailed) as exc:
            raise UserError(str(exc)) from None


def _echo_rtl(out, as_json):
    """Print the ``--backend rtl`` figures."""
    if as_json:
        emit(out, True)
        return

    def num(value, unit=""):
        return "-" if value is None else f"{value:.0f}{unit}"

    accuracy = "-" if out["accuracy"] is None else f"{100 * out['accuracy']:.2f} %"
    where = (f"RTL ({out['simulator']})" if "port" not in out else
             f"port {out['port']}" + (f" (simulated on {out['simulator']})"
                                      if out["simulator"] else ""))
    click.echo(f"{out['arch']} T={out['time_steps']} on {out['config']} {where}:"
               f" accuracy {accuracy} on {out['samples']} test samples, {out['mismatches']} "
               f"mismatches, {num(out['cycles_per_inference'])} cycles per inference (bound "
               f"{num(out['bound_cycles'])}, cost model {num(out['model_cycles'])}); "
               f"{num(out['seconds'], ' s')} "
               + ("in the simulator" if "port" not in out else "in all, load included"))
    if "failure" in out:
        click.echo(f"failed: {out['failure']}")
    if out.get("waves"):
        click.echo(f"waves: {out['waves']}")
    echo_table(["layer", "op", "mismatches", "bound", "model", "rtl cycles"],
               [[r["name"], r["op"], str(r["mismatches"]), num(r["bound_cycles"]),
                 num(r["model_cycles"]), num(r["cycles"])] for r in out["layers"]],
               align="llrrrr")
