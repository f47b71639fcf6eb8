"""``spikeforge compile``: a model file → the accelerator's program, memory images and
manifest for a hardware configuration (``docs/accelerator.md``)."""

import click

from spikeforge.contract.configs import CONFIGS, DEFAULT_CONFIG

from .common import OutputFile, echo_table, json_option

__all__ = ["command", "config_option"]


def config_option(function):
    """``--config NAME``: one of the hardware configurations."""
    return click.option("--config", "config_name", type=click.Choice(list(CONFIGS)),
                        default=DEFAULT_CONFIG, show_default=True,
                        help="Hardware configuration (spikeforge.contract.configs).")(function)


@click.command("compile")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Model file [default: the shipped golden/models/default.npz].")
@config_option
@click.option("-o", "--output", "output", type=OutputFile(folder=True), default=None,
              help="Write <memory>.npy images and manifest.json into this directory.")
@json_option
def command(model_path, config_name, output, as_json):
    """Compile a model for the accelerator.

    Prints model, config, layers, program words and, per memory, the words used and its
    capacity; a model that does not fit or is not spike-driven is refused with one line naming
    the layer, the limit and the value (exit status 2).
    """
    import json

    from spikeforge.compiler import compile_model
    from spikeforge.golden.modelfile import load_model

    compiled = compile_model(load_model(model_path), config_name)
    if output is not None:
        compiled.save(output)
    summary = compiled.summary()
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{summary['model']} for {summary['config']}: {summary['layers']} layers, "
               f"{summary['program_words']} program words, fits: {summary['fits']}")
    echo_table(["memory", "used", "capacity"],
               [[name, str(m["used"]), str(m["capacity"])]
                for name, m in summary["memories"].items()], align="lrr")


def run_accelerator_command(model, test, *, config_name, show_progress):
    """The ``run --backend accelerator`` figures (a dict) of ``model`` on ``test``."""
    from spikeforge.compiler.evaluate import run_accelerator
    from spikeforge.progress import progress_bar

    with progress_bar(total=len(test), show=show_progress, desc="run accelerator",
                      unit="sample", leave=False) as bar:
        return run_accelerator(model, test, config=config_name, progress=bar.update)
