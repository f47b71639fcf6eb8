"""``spikeforge bench``: performance sweeps that print the figure, the analytic bound and their
ratio. Each benchmark lives in its own module, registered in ``BENCHMARKS``."""

import importlib

import click

# Benchmark name -> "module:attribute" of a click command.
BENCHMARKS = {
    "sdsa": "spikeforge.verif.bench_sdsa:command",
    "engine": "spikeforge.verif.bench_engine:command",
}


class _LazyBench(click.Group):
    def list_commands(self, ctx):
        return sorted(BENCHMARKS)

    def get_command(self, ctx, name):
        if name not in BENCHMARKS:
            return None
        module, attr = BENCHMARKS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group("bench", cls=_LazyBench)
def command():
    """Run a benchmark (cycles in simulation against the analytic bound)."""
