"""Progress bars for the long commands: on standard error, and only on a terminal.

A bar redrawn into a log file (CI, ``make demo > log``) is hundreds of carriage-return frames;
:func:`progress_bar` leaves it out there, and when the caller asks for none (``--json``,
``--no-progress``).
"""

import sys

__all__ = ["progress_bar"]


def progress_bar(iterable=None, *, show=True, **options):
    """A ``tqdm`` bar over ``iterable`` (or with ``total=``), written to standard error, shown
    when ``show`` is true and standard error is a terminal; other ``options`` go to ``tqdm``."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if show else True, file=sys.stderr, **options)
