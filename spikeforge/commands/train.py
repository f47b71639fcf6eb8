"""``spikeforge train``: train a small spike-driven transformer on the digits, quantize it and
write a model file."""

import os

import click

from ..errors import UserError, as_user_error
from .common import Integer, Number, OutputFile, atomic_output, emit, json_option


def _arch_names():
    from spikeforge.golden.models import ARCHS
    return list(ARCHS)


@click.command("train")
@click.option("--arch", default="metaspikformer-tiny", show_default=True,
              help="Architecture (metaspikformer-tiny, sdt-v1-tiny, spikformer-tiny, "
                   "spikeformer-tiny).")
@click.option("--epochs", type=Integer(1, 10_000), default=None,
              help="Training epochs [default: 30].")
@click.option("--steps", "-T", "time_steps", type=Integer(1), default=None,
              help="Time steps T, as many as a model file holds [default: the arch's, 4].")
@click.option("--seed", type=Integer(0, (1 << 32) - 1), default=0, show_default=True,
              help="Random seed.")
@click.option("--batch-size", type=Integer(1, 1 << 16), default=None,
              help="Batch size [default: 32].")
@click.option("--lr", type=Number(0, 10, positive=True), default=None,
              help="Peak learning rate [default: 5e-3].")
@click.option("--shift", type=Integer(0, 3), default=None,
              help="Augmentation: random shifts of up to N pixels [default: 1].")
@click.option("--train-samples", type=Integer(1), default=None,
              help="Use only the first N training samples (quick smoke runs).")
@click.option("--weight-bits", type=Integer(1), default=8, show_default=True,
              help="Quantized weight width W, as wide as a model file holds.")
@click.option("--output", "-o", type=OutputFile(), default="model.npz",
              show_default=True, help="Model file to write (only once it is complete and "
                                      "loads back).")
@click.option("--threads", type=Integer(1, 256), default=2, show_default=True,
              help="torch threads (results depend on it: the shipped model used 2).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@json_option
def command(arch, epochs, time_steps, seed, batch_size, lr, shift, train_samples, weight_bits,
            output, threads, no_progress, as_json):
    """Train ARCH on scikit-learn's 8×8 digits (fixed split), quantize it and write a model file.

    Deterministic on CPU (torch.manual_seed, deterministic algorithms, 2 threads): the same
    options reproduce the same file. The shipped model is
    `spikeforge train -o golden/models/default.npz`.
    """
    # Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
    # slow training tenfold. Must be set before torch loads its OpenMP runtime; no effect on
    # the results.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from spikeforge.golden import train as training
    from spikeforge.golden.data import load_digits
    from spikeforge.golden.integer_model import evaluate
    from spikeforge.golden.modelfile import MODEL_FILE_LIMITS, load_model, save_model
    from spikeforge.golden.models import SPIKE_DRIVEN, arch_config
    from spikeforge.golden.quantize import quantize

    options = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                                 ("shift", shift)) if v is not None}
    if arch not in _arch_names():
        raise UserError(f"unknown arch {arch!r} (archs: {', '.join(_arch_names())})")
    for option, value, field in (("--steps", time_steps, "time_steps"),
                                 ("--weight-bits", weight_bits, "weight_bits")):
        low, high = MODEL_FILE_LIMITS[field]
        if value is not None and not low <= value <= high:
            raise UserError(f"{option} must be in {low}..{high} (what a model file holds), "
                            f"not {value}")
    with as_user_error():
        config = arch_config(arch, time_steps=time_steps)
        if config.image_size != 8 or config.in_channels != 1:
            raise UserError(f"arch {arch!r} is a structural (ImageNet) model: train a -tiny arch")
        result = training.train(config, seed=seed, train_samples=train_samples, threads=threads,
                                progress=not no_progress and not as_json, **options)
    _, test = load_digits()
    program = None
    figures = {"arch": arch, "time_steps": config.time_steps, "epochs": options.get(
        "epochs", training.DEFAULTS["epochs"]), "seed": seed,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "train_seconds": round(result.seconds, 1),
        "train_accuracy": result.train_accuracy, "float_accuracy": result.test_accuracy,
        "golden_accuracy": None}
    if config.arch in SPIKE_DRIVEN:
        with as_user_error():
            program = quantize(result.model, weight_bits=weight_bits)
        figures["golden_accuracy"] = evaluate(program, test, backend="golden")
    training_record = {k: figures[k] for k in ("epochs", "seed", "train_seconds")}
    training_record.update(options, torch=torch.__version__, train_samples=train_samples,
                           threads=threads)
    metrics = {k: figures[k] for k in ("train_accuracy", "float_accuracy", "golden_accuracy")}
    with atomic_output(output) as part:
        save_model(part, config=config, state_dict=result.model.state_dict(), program=program,
                   training=training_record, metrics=metrics)
        try:
            load_model(part)
        except UserError as exc:            # e.g. a --lr so large that the weights went NaN
            detail = str(exc).split(": ", 1)[-1]        # the field, without the temporary path
            raise UserError(f"the trained model is not a valid model file, not written: "
                            f"{detail}") from None
    figures["output"] = str(output)
    if as_json:
        emit(figures, True)
        return
    golden = "n/a (float-only arch)" if figures["golden_accuracy"] is None \
        else f"{100 * figures['golden_accuracy']:.2f} %"
    click.echo(f"trained {arch} (T={config.time_steps}, {figures['parameters']} parameters) for "
               f"{figures['epochs']} epochs in {figures['train_seconds']} s")
    click.echo(f"test accuracy: float {100 * figures['float_accuracy']:.2f} %, "
               f"golden integer {golden}")
    click.echo(f"wrote {output}")
