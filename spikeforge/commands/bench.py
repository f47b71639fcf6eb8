"""``spikeforge bench``: performance sweeps that print the figure, the analytic bound and their
ratio. The sweeps are library functions in ``verif/bench_<name>.py`` that return dicts; this
module holds only their options and their output."""

import click

from ..contract.attention import VARIANTS
from ..errors import as_user_error
from ..verif import bench_engine, bench_sdsa
from .common import SEED, Integer, Number, emit, json_option
from .compile import config_option

__all__ = ["command"]


@click.group("bench")
def command():
    """Run a benchmark (cycles in simulation against the analytic bound)."""


@command.command("engine")
@click.option("--rates", default=",".join(str(r) for r in bench_engine.RATES), show_default=True,
              help="Comma-separated firing rates.")
@click.option("--channels", type=Integer(1, 4096), default=64, show_default=True,
              help="C_in = C_out.")
@click.option("--lanes", type=Integer(1, 256), default=16, show_default=True,
              help="Adder lanes P.")
@click.option("--tokens", type=Integer(1, 4096), default=64, show_default=True,
              help="Tokens of the linear layer.")
@click.option("--size", type=Integer(3, 64), default=6, show_default=True,
              help="Frame side of the 3x3 conv.")
@click.option("--seed", type=SEED, default=1, show_default=True)
@json_option
def engine(rates, channels, lanes, tokens, size, seed, as_json):
    """Sweep firing rates on a linear and a 3x3 conv layer; cycles vs. the analytic bound.

    Cycles are counted in the Amaranth simulator from the first spike word offered to the last
    output beat taken. Exits 1 if a target is missed.
    """
    with as_user_error():
        points = bench_engine.sweep(rates=[float(r) for r in rates.split(",") if r.strip()],
                                    channels=channels, lanes=lanes, tokens=tokens, size=size,
                                    seed=seed, progress=True)
    checks = bench_engine.targets(points)
    if as_json:
        emit({"simulator": "amaranth", "lanes": lanes, "points": points, "targets": checks},
             True)
    else:
        header = (f"{'layer':14} {'rate':>5} {'events':>7} {'sops':>8} {'cycles':>7} "
                  f"{'bound':>7} {'ratio':>6} {'sop/lane/cyc':>12} ok")
        lines = [header] + [
            f"{p['layer']:14} {p['rate']:5.2f} {p['events']:7d} {p['sops']:8d} "
            f"{p['cycles']:7d} {p['bound_cycles']:7d} {p['ratio']:6.3f} "
            f"{p['sop_per_lane_cycle']:12.3f} {'yes' if p['correct'] else 'NO'}"
            for p in points]
        lines += [f"target {name}: {'met' if ok else 'MISSED'}" for name, ok in checks.items()]
        emit({}, False, "\n".join(lines))
    if not all(checks.values()):
        raise SystemExit(1)


@command.command("sdsa")
@click.option("--variant", "variants", multiple=True, type=click.Choice(VARIANTS),
              default=VARIANTS,
              show_default=True, help="Variant(s) to measure (repeatable).")
@click.option("--tokens", "-n", "token_counts", multiple=True, type=Integer(1, 4096),
              default=(16, 64, 196), show_default=True, help="N values (repeatable).")
@click.option("--channels", "-d", type=Integer(1, 1024), default=64, show_default=True,
              help="D.")
@click.option("--heads", type=Integer(1, 64), default=8, show_default=True)
@click.option("--steps", "-t", type=Integer(1, 64), default=4, show_default=True,
              help="T, time steps per sample.")
@click.option("--shift", type=Integer(1, 16), default=3, show_default=True,
              help="Score scale 2**-shift.")
@click.option("--rates", nargs=3, type=Number(0, 1), default=bench_sdsa.DEFAULT_RATES,
              show_default=True, help="Firing rates of Q, K, V.")
@click.option("--simulator", "-s", type=click.Choice(["icarus", "verilator"]),
              default="icarus", show_default=True,
              help="icarus or verilator (same cycles: no stalls, deterministic).")
@click.option("--seed", type=SEED, default=1, show_default=True)
@json_option
def sdsa(variants, token_counts, channels, heads, steps, shift, rates, simulator, seed,
         as_json):
    """Cycles per head and time step of the SDSA variants against the analytic bound."""
    with as_user_error():
        rows = bench_sdsa.sweep(variants=variants, token_counts=token_counts, channels=channels,
                                heads=heads, steps=steps, shift=shift, rates=rates,
                                simulator=simulator, seed=seed, progress=not as_json)
    if as_json:
        emit({"benchmark": "sdsa", "rates": list(rates), "points": rows}, True)
        return
    click.echo(f"SDSA, D={channels}, heads={heads}, T={steps}, rates q/k/v={rates}, "
               f"{simulator}; cycles per head per time step")
    click.echo(f"{'variant':9} {'N':>4} {'cycles':>9} {'bound':>9} {'ratio':>6}  "
               f"{'rates q/k/v measured':22} checked")
    for r in rows:
        measured = "/".join(str(r["rates_measured"][n]) for n in "qkv")
        note = (f"; model {r['model']} cycles (measured / model {r['model_ratio']})"
                if "model" in r else "")
        click.echo(f"{r['variant']:9} {r['tokens']:>4} {r['cycles_per_head']:>9} "
                   f"{r['bound_per_head']:>9} {r['ratio']:>6}  {measured:22} "
                   f"{r['checked']} ({r['mismatches']} mismatches){note}")


@command.command("accelerator")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Model file [default: the shipped golden/models/default.npz].")
@config_option
@click.option("--samples", type=Integer(1, 450), default=4, show_default=True,
              help="First N test samples, one whole inference each.")
@click.option("--simulator", "-s", type=click.Choice(["verilator", "icarus"]),
              default="verilator", show_default=True)
@click.option("--jobs", "-j", type=Integer(1, 64), default=2, show_default=True,
              help="Simulator processes sharing the samples.")
@click.option("--seed", type=SEED, default=1, show_default=True)
@json_option
def accelerator(model_path, config_name, samples, simulator, jobs, seed, as_json):
    """Inferences per minute of the accelerator's RTL in simulation, and the projected time
    of the whole test split (450 images; target 15 minutes).

    The compiled model is loaded through the host port once per simulator process; then each
    sample's input is written, the whole program runs in one START (no host stalls, no Python
    until done) and the scores are read and compared with the golden model's. The rate counts
    the wall time after the build; its bound is the simulator alone at the measured cycles
    per second; cycles per inference are measured on the RTL (STATUS) next to the cost
    model's bound. Exits 1 on a score mismatch.
    """
    from spikeforge.compiler import compile_model
    from spikeforge.golden.data import load_digits
    from spikeforge.golden.modelfile import load_model
    from spikeforge.verif import bench_accelerator

    model = load_model(model_path)
    _, test = load_digits()
    model.check_images(test.images)
    test = test.head(samples)
    compiled = compile_model(model, config_name)
    with as_user_error(LookupError):        # the accelerator unit not registered
        out = bench_accelerator.bench(compiled, test.images.numpy(), simulator=simulator,
                                      seed=seed, jobs=jobs)
    out["model"] = str(model.path)
    if as_json:
        emit(out, True)
    else:
        def num(key, form="{:.0f}"):
            return "-" if out[key] is None else form.format(out[key])

        click.echo(f"accelerator {out['config']} on {simulator}, {out['samples']} samples in "
                   f"{out['jobs']} processes: {num('inferences_per_minute', '{:.2f}')} "
                   f"inferences per minute, bound {num('bound_inferences_per_minute', '{:.2f}')}"
                   f" (ratio {num('ratio', '{}')}); {num('seconds_per_inference', '{:.2f}')} s "
                   f"per inference ({num('run_seconds', '{:.2f}')} s START to done, "
                   f"{num('simulated_cycles_per_second')} simulated cycles/s)")
        click.echo(f"wall {num('wall_seconds', '{:.1f}')} s (build "
                   f"{num('build_seconds', '{:.1f}')} s, load {num('load_seconds', '{:.1f}')} s);"
                   f" {out['test_split_images']} images projected at "
                   f"{num('test_split_seconds', '{:.0f}')} s (target {out['target_seconds']} s)")
        click.echo(f"{num('cycles_per_inference')} cycles per inference (median), bound "
                   f"{num('bound_cycles')} (ratio {num('cycles_ratio', '{}')}); "
                   f"{out['mismatches']} mismatches")
        if "failure" in out:
            click.echo(f"failed: {out['failure']}")
    if out["mismatches"] or "failure" in out:
        raise SystemExit(1)
