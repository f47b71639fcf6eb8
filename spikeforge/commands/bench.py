"""``spikeforge bench``: performance sweeps that print the figure, the analytic bound and their
ratio. Each benchmark lives in its own module, registered in ``BENCHMARKS``."""

import click

from ..lazy import LazyGroup

# Benchmark name -> "module:attribute" of a click command.
BENCHMARKS = {
    "sdsa": "spikeforge.verif.bench_sdsa:command",
    "engine": "spikeforge.verif.bench_engine:command",
}


@click.group("bench", cls=LazyGroup, lazy=BENCHMARKS)
def command():
    """Run a benchmark (cycles in simulation against the analytic bound)."""
