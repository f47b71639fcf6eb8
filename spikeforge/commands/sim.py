"""``spikeforge sim``: a unit's randomized cocotb testbench against its golden function."""

import sys

import click

from ..errors import as_user_error
from .common import (SEED, check_stimulus, check_unit, emit, json_option, param_option,
                     simulator_option, stim_option)


@click.command("sim")
@click.argument("unit", required=False)
@simulator_option
@param_option
@stim_option
@click.option("--seed", type=SEED, default=None, help="Random seed (default: random).")
@click.option("--waves", is_flag=True,
              help="Record the run's signals (Verilator: FST, Icarus: VCD) and print the file's "
                   "path (open it with GTKWave or Surfer).")
@click.option("--list", "list_units", is_flag=True, help="List the units and their defaults.")
@json_option
def command(unit, simulator, params, stim, seed, waves, list_units, as_json):
    """Simulate UNIT on Icarus or Verilator against the golden model.

    Prints unit, simulator, checked transfers, mismatches, cycles and seconds; exits 1 on any
    mismatch.
    """
    from spikeforge.verif.units import UNITS
    if list_units or unit is None:
        for u in UNITS.values():
            defaults = " ".join(f"{k}={v}" for k, v in u.defaults.items())
            click.echo(f"{u.name:10} {u.summary}  [{defaults}]")
        return
    check_stimulus(check_unit(unit, params), stim)
    from spikeforge.verif.runner import simulate, SimulationFailed
    try:
        with as_user_error():
            result = simulate(unit, params=params, stimulus=stim, simulator=simulator,
                              seed=seed, waves=waves)
    except SimulationFailed as exc:
        if exc.result is not None:
            emit(_figures(exc.result), as_json)
        click.echo(f"spikeforge: {exc}", err=True)
        sys.exit(1)
    emit(_figures(result), as_json)


def _figures(result):
    return {"unit": result.unit, "simulator": result.simulator, "params": result.params,
            "seed": result.seed, "checked": result.checked, "mismatches": result.mismatches,
            "cycles": result.cycles, "seconds": result.seconds,
            **({"waves": result.waves} if result.waves else {})}
