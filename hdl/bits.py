"""Combinational bit helpers shared by the units: find-first-set, one-hot encoding, popcounts
and block selects, built as trees (no priority or carry chain along a whole word).

The helpers that take a module ``m`` drive one combinational signal per tree node in it: an
expression used twice would otherwise be generated twice, and a tree would grow exponentially
with its depth.
"""

from amaranth.hdl import Signal, Const, Cat, Mux, Value, unsigned

__all__ = ["count_bits", "lowest_set", "one_hot_index", "prefix_counts", "popcount",
           "block_any", "select_block", "lowest_set_blocked", "count_to_three"]


def count_bits(limit):
    """Bits of an unsigned counter that never exceeds ``limit`` (at least 1)."""
    return max(1, limit.bit_length())


def lowest_set(value):
    """One-hot of the lowest set bit of ``value`` (0 if none); combinational."""
    return (value & (~value + 1))[:len(value)]


def one_hot_index(one_hot):
    """Index of the set bit of a one-hot value (an OR tree, no priority chain); 0 if none."""
    n = len(one_hot)
    bits = max(1, (n - 1).bit_length())
    return Cat(*[Cat(*[one_hot[i] for i in range(n) if (i >> k) & 1]).any()
                 if any((i >> k) & 1 for i in range(n)) else Const(0, 1)
                 for k in range(bits)])


def prefix_counts(m, bits, *, limit, name):
    """Saturating bit counts of ``bits`` (a parallel-prefix network, ``log2(len(bits))`` levels
    of small adders, each level's results kept in combinational signals added to ``m``).

    Returns ``(below, total)``: ``below[i]`` is ``min(limit, popcount(bits[:i]))`` and
    ``total`` is ``min(limit, popcount(bits))``.
    """
    shape = unsigned(limit.bit_length())

    def sat_add(a, b):
        total = a + b
        return Mux(total > limit, limit, total)

    n = len(bits)
    level = [bits[i] for i in range(n)]
    step = 1
    while step < n:
        nxt = []
        for i in range(n):
            value = sat_add(level[i], level[i - step]) if i >= step else level[i]
            sig = Signal(shape, name=f"{name}_count{step}_{i}")
            m.d.comb += sig.eq(value)
            nxt.append(sig)
        level, step = nxt, step * 2
    if n == 1:
        level = [Value.cast(level[0])]
    below = [Const(0, shape)] + level[:-1]
    return below, level[-1]


def popcount(value):
    """Number of set bits of ``value``, as a balanced adder tree (combinational)."""
    terms = [value[i] for i in range(len(value))]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def block_any(value, block_bits):
    """One bit per ``block_bits``-bit block of ``value``: whether the block has a set bit."""
    blocks = len(value) // block_bits
    return Cat(*[value[b * block_bits:(b + 1) * block_bits].any() for b in range(blocks)])


def select_block(block_hot, word, block_bits):
    """Block ``b`` of ``word`` where ``block_hot`` is one-hot at ``b`` (an AND-OR, no index);
    0 if ``block_hot`` is 0."""
    picked = Const(0, block_bits)
    for b in range(len(block_hot)):
        picked = picked | Mux(block_hot[b], word[b * block_bits:(b + 1) * block_bits], 0)
    return picked


def lowest_set_blocked(m, value, block_bits):
    """One-hot of the lowest set bit of ``value`` and one-hot of its ``block_bits``-bit block.

    The same bit as :func:`lowest_set`, found in two short levels (the lowest block with a set
    bit, and the lowest set bit in every block) instead of one carry chain along the whole
    word. Returns ``(hot, block_hot)``, both 0 if ``value`` is 0: combinational signals driven
    in ``m`` (so that every use refers to one copy of the logic).
    """
    blocks = len(value) // block_bits
    block_hot = Signal(blocks)
    hot = Signal(len(value))
    m.d.comb += [
        block_hot.eq(lowest_set(block_any(value, block_bits))),
        hot.eq(Cat(*[lowest_set(value[b * block_bits:(b + 1) * block_bits]) &
                     block_hot[b].replicate(block_bits) for b in range(blocks)])),
    ]
    return hot, block_hot


def count_to_three(m, value):
    """Set bits of ``value``, saturated at 3 (a tree of 2-bit saturating adds, no carry chain),
    each tree node a combinational signal driven in ``m``."""
    terms = [value[i] for i in range(len(value))]
    if not terms:
        return Const(0, 2)
    while len(terms) > 1:
        pairs = []
        for i in range(0, len(terms) - 1, 2):
            total = Signal(3)
            node = Signal(2)
            m.d.comb += [total.eq(terms[i] + terms[i + 1]),
                         node.eq(Mux(total > 3, 3, total[:2]))]
            pairs.append(node)
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]
