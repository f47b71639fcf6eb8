"""The program format (spikeforge.contract.program) and the hardware configurations
(spikeforge.contract.configs)."""

import random

import pytest

from spikeforge.contract.configs import CONFIGS, DEFAULT_CONFIG, DEVICES, get_config
from spikeforge.contract.program import (DESCRIPTOR_BITS, DESCRIPTOR_WORDS, FIELDS,
                                         FORMAT_VERSION, PROGRAM_WORD_BITS, Memory, Op,
                                         field_offsets, memory_map, pack, unpack)


def test_layout_fits_whole_words():
    assert len({name for name, _ in FIELDS}) == len(FIELDS)
    assert DESCRIPTOR_BITS == DESCRIPTOR_WORDS * PROGRAM_WORD_BITS
    assert sum(bits for _, bits in FIELDS) <= DESCRIPTOR_BITS
    offsets = field_offsets()
    at = 0
    for name, bits in FIELDS:                   # contiguous, in table order
        assert offsets[name] == (at, bits)
        at += bits


def test_pack_unpack_round_trip():
    rng = random.Random(1)
    for _ in range(50):
        fields = {name: rng.randrange(1 << bits) for name, bits in FIELDS}
        words = pack(fields)
        assert len(words) == DESCRIPTOR_WORDS
        assert all(0 <= w < 1 << PROGRAM_WORD_BITS for w in words)
        assert unpack(words) == fields


def test_pack_defaults_version_and_zero():
    fields = unpack(pack({"op": Op.CONV}))
    assert fields["version"] == FORMAT_VERSION and fields["op"] == Op.CONV
    assert all(v == 0 for k, v in fields.items() if k not in ("op", "version"))


@pytest.mark.parametrize("name, bits", [("in_channels", 11), ("a_base", 20), ("op", 4)])
def test_field_overflow_refused_naming_it(name, bits):
    with pytest.raises(ValueError, match=f"'{name}' \\({bits} bits\\) cannot hold {1 << bits}"):
        pack({name: 1 << bits})
    with pytest.raises(ValueError, match=name):
        pack({name: -1})


def test_bad_fields_refused():
    with pytest.raises(ValueError, match="unknown descriptor field 'nope'"):
        pack({"nope": 1})
    with pytest.raises(TypeError, match="'kernel'"):
        pack({"kernel": 1.0})
    with pytest.raises(ValueError, match="16 words, not 3"):
        unpack([0, 0, 0])
    with pytest.raises(ValueError, match="past its last field"):
        unpack([0] * (DESCRIPTOR_WORDS - 1) + [1 << 31])


def test_configs_fit_their_devices():
    assert get_config().name == DEFAULT_CONFIG == "ulx3s-85f"
    for config in CONFIGS.values():
        assert set(memory_map(config)) == {m.name.lower() for m in Memory}
        for family, used in config.block_use().items():
            assert used <= DEVICES[config.device][family], (config.name, family, used)
    assert CONFIGS["ulx3s-85f"].block_use()["ecp5-ebr"] > 100


def test_unknown_config_refused():
    with pytest.raises(ValueError, match="unknown config 'nope' \\(configs: ulx3s-85f"):
        get_config("nope")
