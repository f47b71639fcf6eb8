"""hdl/params.py: the parameter checks every unit uses, and their messages naming the
parameter."""

import pytest

from spikeforge.hdl.params import (MAX_PARAMETER, check_bool, check_choice, check_int,
                                   check_power_of_two)


def test_accepted_values_are_returned():
    assert check_int("lanes", 8, min=1, max=64) == 8
    assert check_int("depth", MAX_PARAMETER + 1, max=None) == MAX_PARAMETER + 1
    assert check_bool("input_signed", False) is False
    assert check_choice("mode", "sew", ("membrane", "sew")) == "sew"
    assert check_power_of_two("depth", 16) == 16


@pytest.mark.parametrize("check, error, message", [
    (lambda: check_int("lanes", 2.0), TypeError, "lanes must be an integer, not 2.0"),
    (lambda: check_int("lanes", True), TypeError, "lanes must be an integer"),
    (lambda: check_int("lanes", 0, min=1), ValueError, "lanes must be at least 1, not 0"),
    (lambda: check_int("lanes", 9, max=8), ValueError, "lanes must be at most 8, not 9"),
    (lambda: check_int("lanes", MAX_PARAMETER + 1), ValueError, "lanes must be at most"),
    (lambda: check_bool("input_signed", 1), TypeError, "input_signed must be a bool, not 1"),
    (lambda: check_choice("mode", "add", ("membrane", "sew")), ValueError,
     "mode must be one of 'membrane', 'sew', not 'add'"),
    (lambda: check_power_of_two("depth", 12), ValueError, "depth must be a power of two"),
])
def test_refusals_name_the_parameter(check, error, message):
    with pytest.raises(error) as info:
        check()
    assert str(info.value).startswith(message)
