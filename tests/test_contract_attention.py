"""The attention vocabulary (:mod:`spikeforge.contract.attention`): the stored names, the mapping
from model block and order to variant and back, and that every side (model configs, quantizer,
shipped model file, golden, RTL) speaks it."""

import pytest
import torch

from spikeforge.contract.attention import (BLOCKS, BLOCK_SDSA1, FORMULAS, ORDERS, VARIANTS,
                                           VARIANT_V1, lif_frac_bits, lif_membrane_bits,
                                           lif_threshold, order_of, variant_of)
from spikeforge.golden.attention import sdsa_int
from spikeforge.golden.modelfile import load_model
from spikeforge.golden.models import SPIKE_DRIVEN, arch_config, build_model
from spikeforge.golden.models.config import ARCH_KINDS
from spikeforge.golden.quantize import quantize
from spikeforge.hdl.attention import SDSA


def test_stored_names():
    # Model files (format version 1), `-p variant=...` and `--order` carry these strings:
    # renaming one needs a versioned migration of the model file.
    assert VARIANTS == ("v1", "ssa", "qk_first")
    assert ORDERS == ("kv_first", "qk_first")
    assert BLOCKS == ("sdsa1", "sdsa3", "ssa")
    assert set(FORMULAS) == set(VARIANTS)


def test_variant_of_and_order_of():
    for order in ORDERS + (None,):
        assert variant_of(BLOCK_SDSA1, order) == VARIANT_V1
    assert order_of(VARIANT_V1) is None
    for block in BLOCKS[1:]:
        assert [variant_of(block, order) for order in ORDERS] == list(VARIANTS[1:])
        for order in ORDERS:
            assert order_of(variant_of(block, order)) == order


@pytest.mark.parametrize("call,name", [
    (lambda: variant_of("sdsa2", "kv_first"), "block"),
    (lambda: variant_of("ssa", "kq"), "order"),
    (lambda: variant_of("sdsa3"), "order"),
    (lambda: order_of("kv_first"), "variant"),
])
def test_bad_names(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("arch", SPIKE_DRIVEN)
def test_every_side_speaks_the_vocabulary(arch, order):
    # The model's attention block is the architecture's, the quantizer writes the variant that
    # the mapping gives, and both the golden model and the RTL take that variant.
    block = ARCH_KINDS[arch]["attention"]
    model = build_model(arch_config(f"{arch}-tiny", order=order))
    blocks = {m.block for m in model.modules() if hasattr(m, "block")}
    assert blocks == {block}
    program = quantize(model)
    variants = {layer["variant"] for layer in program.layers if layer["op"] == "attention"}
    assert variants == {variant_of(block, order)}
    (variant,) = variants
    x = torch.ones(2, 3, 4, dtype=torch.int64)
    assert sdsa_int(x, x, x, variant=variant, heads=2).shape == x.shape
    assert SDSA(variant=variant, tokens=3, channels=4, heads=2, steps=2).variant == variant


def test_shipped_model_file():
    model = load_model()
    block = ARCH_KINDS[model.config.arch]["attention"]
    variants = {layer["variant"] for layer in model.layers if layer["op"] == "attention"}
    assert variants == {variant_of(block, model.config.order)}


def test_lif_constants():
    assert [lif_threshold(s) for s in (1, 2, 3)] == [1, 2, 4]
    assert lif_frac_bits(4) == 4
    assert lif_membrane_bits(shift=3, steps=4) == 8
