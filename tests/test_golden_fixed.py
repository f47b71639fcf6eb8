"""Saturating fixed-point helpers (``golden/fixed.py``): one helper for every golden op, and
the ranges equal to the shared contract's with the width checked."""

import numpy as np
import pytest
import torch

from spikeforge.contract import sizes
from spikeforge.golden import conv as conv_module
from spikeforge.golden import fixed, lif, residual


def test_one_saturate_helper_serves_conv_lif_and_residual():
    assert conv_module.saturate is fixed.saturate and lif.saturate is fixed.saturate
    assert residual.saturate_unsigned is fixed.saturate_unsigned
    assert fixed.saturate(np.array([-300, 5, 300]), 9).tolist() == [-256, 5, 255]
    assert fixed.saturate(torch.tensor([7]), None).tolist() == [7]
    assert fixed.saturate_unsigned(torch.tensor([-1, 3, 9]), 3).tolist() == [0, 3, 7]
    with pytest.raises(ValueError, match="bits"):
        fixed.saturate(1, 0)


@pytest.mark.parametrize("bits", [1, 2, 8, 33])
def test_ranges_are_the_contract_ranges(bits):
    assert fixed.signed_range(bits) == sizes.signed_range(bits)
    assert fixed.unsigned_range(bits) == sizes.unsigned_range(bits)


@pytest.mark.parametrize("bits", [0, -1, 2.0, True])
def test_ranges_check_the_width(bits):
    with pytest.raises(ValueError, match="bits"):
        fixed.signed_range(bits)
    with pytest.raises(ValueError, match="bits"):
        fixed.unsigned_range(bits)
