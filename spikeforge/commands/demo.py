"""``spikeforge demo``: the end-to-end job as far as the project goes, saying what it does."""

import click

from .common import json_option, emit


@click.command("demo")
@click.option("--simulator", "-s", default="icarus", show_default=True,
              help="icarus or verilator.")
@json_option
def command(simulator, as_json):
    """Run every unit's testbench once against the golden model and summarise."""
    from spikeforge.verif.units import UNITS
    from spikeforge.verif.runner import simulate
    rows = []
    for name in UNITS:
        result = simulate(name, simulator=simulator, seed=1)
        rows.append(result.as_dict())
        if not as_json:
            click.echo(f"{name}: {result.checked} outputs checked against the golden model on "
                       f"{simulator}, {result.mismatches} mismatches, {result.cycles} cycles")
    if as_json:
        emit({"units": rows}, True)
