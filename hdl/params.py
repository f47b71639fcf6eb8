"""Checks for elaboration parameters: every unit validates its keyword parameters at construction
and raises with the parameter's name, so a bad configuration never reaches elaboration."""

__all__ = ["MAX_PARAMETER", "check_int", "check_bool", "check_choice", "check_power_of_two"]

#: The largest integer parameter a check allows unless it gives its own ``max``: Amaranth holds
#: no value wider than 2**16 bits, and no width, count or depth of a unit comes near it (one
#: that large would fail deep in Amaranth, or elaborate for hours).
MAX_PARAMETER = 1 << 16


def check_int(name, value, *, min=None, max=MAX_PARAMETER):
    """Return ``value`` if it is an integer in ``[min, max]``; raise naming ``name`` otherwise.
    ``max=None`` sets no upper limit."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if min is not None and value < min:
        raise ValueError(f"{name} must be at least {min}, not {value!r}")
    if max is not None and value > max:
        raise ValueError(f"{name} must be at most {max}, not {value!r}")
    return value


def check_bool(name, value):
    """Return ``value`` if it is a ``bool``; raise naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value


def check_power_of_two(name, value, *, min=1):
    """Return ``value`` if it is a power of two no smaller than ``min``."""
    check_int(name, value, min=min)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")
    return value


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, not {value!r}")
    return value
