"""Spikformer SSA in the ``qk_first`` order, ``A = (Q @ K^T) @ V`` (variant ``qk_first``), with
the keys indexed by channel so that a Q token visits only the keys it overlaps."""

from dataclasses import dataclass

from amaranth.hdl import Signal, Mux, Cat, Value, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory, ReadPort

from ..bits import (count_bits, count_to_three, lowest_set, lowest_set_blocked, one_hot_index,
                    select_block)
from ..layouts import index_shape
from .ssa import SSABackEnd

__all__ = ["SSAQKFirst"]


def _select(m, hot, values, name):
    """``values[i]`` where ``hot`` is one-hot at ``i`` (0 if ``hot`` is 0): an AND-OR, no index.

    Driven into a combinational signal of ``m`` so that every use refers to one copy."""
    width = len(values[0])
    picked = Signal(width, name=name)
    m.d.comb += picked.eq(select_block(hot, Cat(*values), width))
    return picked


def _delay(m, advance, item, name):
    """``item`` registered under ``advance``: one stage of the Q-phase pipeline."""
    stage = Signal(item.shape(), name=name)
    with m.If(advance):
        m.d.sync += stage.eq(item)
    return stage


@dataclass(frozen=True)
class _KeyLists:
    """What the K/V phase (:meth:`SSAQKFirst._append_keys`) leaves to the Q phase."""
    store: ReadPort          # the token store: V word of stored token ``m`` at address ``m``
    lists: tuple             # per head, the read port of its key lists
    counts: tuple            # per channel ``i``, ``count_i``: entries in the list of ``i``
    nonempty: Signal         # bit ``i``: ``count_i != 0``
    done: Value              # every K spike of the step is in its list
    release: Signal          # driven by the Q phase: the step's last store read is issued


@dataclass(frozen=True)
class _QBuffer:
    """The one-word Q buffer (:meth:`SSAQKFirst._q_buffer`)."""
    word: Signal             # the Q word, masked by the non-empty lists
    valid: Signal
    more: Signal             # `word` has two channels or more
    open: Signal             # the step's Q words are not all taken
    swap: Signal             # driven by the pick: `src` takes the word


class SSAQKFirst(SSABackEnd):
    """Spikformer SSA in the other order, ``A = (Q @ K^T) @ V`` per head (CIFAR/DVS models),
    with the keys indexed by channel so that a Q token visits only the keys it overlaps.

    K/V phase (:meth:`_append_keys`): each token whose K word has a spike gets the next index
    ``m`` of a token store (its V word, ``M <= tokens`` entries). Each K spike
    ``(channel i, token m)`` is appended to channel ``i``'s key list: entry ``count_i`` of the
    list of ``i``, ``count_i`` a per-channel counter. The lists of head ``h`` are one memory
    (address ``Cat(count_i, i % D_h)``, a power-of-two stride of ``2**ceil(log2(tokens))``
    entries per channel), so the heads take one K spike each per cycle: a token costs
    ``max(1, max_h k_h)`` cycles, ``k_h`` its K spikes in head ``h``.

    Q phase: for each Q token, the spiking channels ``i`` with a non-empty list are picked in
    order, lowest first, and every entry ``m`` of each list is walked, one per cycle: the
    accumulators ``j`` of the head of ``i`` gain ``V_m,j`` (a 1-bit add). Summed over the
    channels of a head this is ``popcount(Q_h AND K_m,h) * V_m,j``, the golden's ``A``. A Q token
    costs ``max(1, sum_i Q_i * count_i)`` cycles. Its ``D`` sums leave as one score beat
    (lanes ``D``, one group). Golden: ``ssa_int(order="qk_first")``.

    Stages of the Q phase, each a method: the Q word into a one-word buffer
    (:meth:`_q_buffer`); the pick of the token's lowest remaining channel into a register
    (one-hot), then its counter, selected by AND-OR from that register (:meth:`_pick`); the
    walk, whose registered entry and channel address the list memories, a registered flag
    marking a channel's last entry (:meth:`_walk`); the list outputs, registered; the token
    store read from that register; the V word, registered, so that no block-RAM output feeds
    logic before a register (:meth:`_fetch`); the add (:meth:`~.ssa.SSABackEnd._accumulate`).
    Every walked entry flows down as an *item* (:attr:`item_layout`). The next step's K/V beats
    are taken once the step's last token store read is issued. A counter never exceeds
    ``tokens`` and a score never exceeds ``tokens * D_h``, so their widths cannot overflow.
    Parameters and ports: :class:`~.base.AttentionUnit`.
    """

    @property
    def score_lanes(self):
        return self._channels

    @property
    def item_layout(self):
        """One walked list entry in the Q-phase pipeline: ``valid``; ``head``, one-hot (0 for a
        token with no work); ``last``, the token's last entry (in the pick and walk registers:
        its last channel); ``end``, the step's last entry (last channel)."""
        return data.StructLayout({"valid": 1, "head": self._heads, "last": 1, "end": 1})

    @property
    def _index_shape(self):
        """A token index or a list entry index."""
        return index_shape(self._tokens)

    @property
    def _count_shape(self):
        return unsigned(count_bits(self._tokens))

    def _scores(self, m, beats):
        advance = ~beats.valid | beats.ready
        keys = self._append_keys(m)
        qbuf = self._q_buffer(m, keys)
        take = Signal()                              # the walk takes the counted pick
        counted = self._pick(m, keys, qbuf, take)
        walked = self._walk(m, keys, counted, take, advance)
        v_word, item = self._fetch(m, keys, walked, advance)
        # Accumulator j gains V_m,j where j is in the head of the walked channel.
        dh = self.head_channels
        self._accumulate(m, beats, advance, item.valid, item.last,
                         [v_word[j] & item.head[j // dh] for j in range(self._channels)], 0)

    def _append_keys(self, m):
        """K/V phase: the token store, the key lists and their counters.

        The accepted token's V word goes into the store; its K spikes are pending in
        ``kbits``, and each head appends its lowest pending spike every cycle."""
        dh, tokens, channels, heads = self.head_channels, self._tokens, self._channels, self._heads
        index_shape, count_shape = self._index_shape, self._count_shape
        stride = index_shape.width                           # entries per channel: 2**stride
        m.submodules.store = store = Memory(shape=channels, depth=tokens, init=[])
        st_wr, st_rd = store.write_port(), store.read_port()
        lists = []
        for h in range(heads):
            mem = Memory(shape=index_shape, depth=dh << stride, init=[])
            m.submodules[f"list{h}"] = mem
            lists.append((mem.write_port(), mem.read_port()))
        counts = [Signal(count_shape, name=f"count{i}") for i in range(channels)]
        nonempty = Signal(channels)                  # bit i: count_i != 0

        loaded = Signal(range(tokens + 1))
        stored = Signal(range(tokens + 1))
        full = Signal()                              # the step's last K/V beat is taken
        kbits = Signal(channels)
        token = Signal(index_shape)                  # store index of the token in `kbits`
        pending = Signal()                           # `kbits` has a spike
        busy = Signal()                              # some head of `kbits` has two or more
        release = Signal()                           # the step's last store read is issued
        accept = Signal()
        m.d.comb += [
            self.kv.ready.eq(~full & ~busy),
            accept.eq(self.kv.valid & self.kv.ready),
            st_wr.addr.eq(stored),
            st_wr.data.eq(self.kv.payload.v),
            st_wr.en.eq(accept & self.kv.payload.k.any()),
        ]
        k_in = self.kv.payload.k
        blocks = range(heads)
        m.d.sync += [
            pending.eq(Mux(accept, k_in.any(), busy)),
            busy.eq(Mux(accept,
                        Cat(*[count_to_three(m, k_in[h * dh:(h + 1) * dh]) >= 2
                              for h in blocks]).any(),
                        Cat(*[count_to_three(m, kbits[h * dh:(h + 1) * dh]) == 3
                              for h in blocks]).any())),
        ]
        hots = []
        for h, (wr, _) in enumerate(lists):
            hot = Signal(dh, name=f"k_hot{h}")
            m.d.comb += hot.eq(lowest_set(kbits[h * dh:(h + 1) * dh]))
            hots.append(hot)
            at = _select(m, hot, counts[h * dh:(h + 1) * dh], f"k_count{h}")
            m.d.comb += [wr.addr.eq(Cat(at[:stride], one_hot_index(hot))),
                         wr.data.eq(token), wr.en.eq(hot.any())]
        k_hot = Cat(*hots)
        with m.If(accept):
            m.d.sync += [kbits.eq(k_in), token.eq(stored), loaded.eq(loaded + 1)]
            with m.If(loaded == tokens - 1):
                m.d.sync += full.eq(1)
            with m.If(st_wr.en):
                m.d.sync += stored.eq(stored + 1)
        with m.Else():
            m.d.sync += kbits.eq(kbits & ~k_hot)
        with m.If(release):
            m.d.sync += [loaded.eq(0), stored.eq(0), full.eq(0), nonempty.eq(0)]
            m.d.sync += [c.eq(0) for c in counts]
        with m.Else():
            m.d.sync += [c.eq(c + k_hot[i]) for i, c in enumerate(counts)]
            m.d.sync += nonempty.eq(nonempty | k_hot)
        return _KeyLists(store=st_rd, lists=tuple(rd for _, rd in lists), counts=tuple(counts),
                         nonempty=nonempty, done=full & ~pending, release=release)

    def _q_buffer(self, m, keys):
        """Q phase, input: the Q word, masked by the non-empty lists, with its "two channels or
        more" flag, so that the pick's ``src`` and ``more`` load from registers. Q words are
        taken once the step's keys are all in their lists, until the step's last one."""
        tokens = self._tokens
        buf = _QBuffer(word=Signal(self._channels, name="q_word"), valid=Signal(name="q_valid"),
                       more=Signal(name="q_more"), open=Signal(init=1, name="q_open"),
                       swap=Signal(name="swap"))
        taken = Signal(range(tokens))
        m.d.comb += self.q.ready.eq(keys.done & buf.open & (~buf.valid | buf.swap))
        with m.If(self.q.valid & self.q.ready):
            word = self.q.payload.data & keys.nonempty
            m.d.sync += [buf.word.eq(word), buf.more.eq(count_to_three(m, word) >= 2),
                         buf.valid.eq(1)]
            with m.If(taken == tokens - 1):
                m.d.sync += [taken.eq(0), buf.open.eq(0)]
            with m.Else():
                m.d.sync += taken.eq(taken + 1)
        with m.Elif(buf.swap):
            m.d.sync += buf.valid.eq(0)
        with m.If(keys.release):
            m.d.sync += buf.open.eq(1)
        return buf

    def _pick(self, m, keys, qbuf, take):
        """Q phase, pick: ``src``, the Q token's remaining channels with a non-empty list; its
        lowest one goes into the channel register (``chosen``, one-hot) whenever that is free
        or being passed on, and from there, with its counter selected by AND-OR from the
        registered one-hot, into the counter register (``counted``), which the walk takes on
        ``take``: each step of the pick is a short path. Returns ``counted``."""
        dh, channels = self.head_channels, self._channels
        pick_fields = {"item": self.item_layout, "local": range(dh)}
        chosen = Signal(data.StructLayout({**pick_fields, "hot": channels}), name="chosen")
        counted = Signal(data.StructLayout({**pick_fields, "count": self._count_shape}),
                         name="counted")
        src = Signal(channels)
        have = Signal()                              # `src` holds a token not fully picked
        more = Signal()                              # `src` has two channels or more
        pick_hot, pick_block = lowest_set_blocked(m, src, dh)
        pick_local = Signal(range(dh))
        m.d.comb += pick_local.eq(one_hot_index(
            Cat(*[pick_hot[i::dh].any() for i in range(dh)])))
        load = Signal()                              # `counted` takes `chosen`
        pick = Signal()                              # `chosen` takes a pick
        m.d.comb += [
            load.eq(~counted.item.valid | take),
            pick.eq(~chosen.item.valid | load),
            qbuf.swap.eq(qbuf.valid & (~have | (pick & ~more))),
        ]
        with m.If(load):
            m.d.sync += [
                counted.item.eq(chosen.item), counted.local.eq(chosen.local),
                counted.count.eq(_select(m, chosen.hot, keys.counts, "pick_count")),
            ]
        with m.If(pick):
            m.d.sync += [
                chosen.item.valid.eq(have), chosen.item.head.eq(pick_block),
                chosen.item.last.eq(~more), chosen.item.end.eq(~more & ~qbuf.open & ~qbuf.valid),
                chosen.hot.eq(pick_hot), chosen.local.eq(pick_local),
                src.eq(src & ~pick_hot), more.eq(count_to_three(m, src) == 3),
            ]
            with m.If(~more):
                m.d.sync += have.eq(0)
        with m.If(qbuf.swap):
            m.d.sync += [src.eq(qbuf.word), more.eq(qbuf.more), have.eq(1)]
        return counted

    def _walk(self, m, keys, counted, take, advance):
        """Q phase, walk: the current channel (head one-hot, list) and entry address every
        head's list memory, one entry per cycle; ``rest`` entries are left, ``final`` (a
        register) says the current one is the channel's last, and decides ``take``. Returns
        the walked entry as an item."""
        stride = self._index_shape.width
        walk = Signal(data.StructLayout({
            "item": self.item_layout, "local": range(self.head_channels),
            "rest": self._count_shape, "entry": self._index_shape, "final": 1}), name="walk")
        m.d.comb += take.eq(advance & (~walk.item.valid | walk.final))
        with m.If(take):
            m.d.sync += [
                walk.item.eq(counted.item), walk.local.eq(counted.local),
                walk.rest.eq(counted.count), walk.final.eq(counted.count[1:] == 0),
                walk.entry.eq(0),
            ]
        with m.Elif(advance):
            m.d.sync += [walk.entry.eq(walk.entry + 1), walk.rest.eq(walk.rest - 1),
                         walk.final.eq(walk.rest == 2)]
        for rd in keys.lists:
            m.d.comb += [rd.addr.eq(Cat(walk.entry[:stride], walk.local)), rd.en.eq(advance)]
        walked = Signal(self.item_layout, name="walked")
        m.d.comb += [
            walked.valid.eq(walk.item.valid), walked.head.eq(walk.item.head),
            walked.last.eq(walk.item.last & walk.final), walked.end.eq(walk.item.end & walk.final),
        ]
        return walked

    def _fetch(self, m, keys, walked, advance):
        """Q phase, fetch: the list outputs arrive and are registered, the token store is read
        from that register (an AND-OR select of the walked head's list), the V word arrives and
        is registered. Issuing the step's last store read drives ``keys.release``: the next
        step's K/V may come in (its first store write lands in the next cycle at the
        earliest). Returns ``(v_word, item)``, the V word and its item, in the same cycle."""
        at_lists = _delay(m, advance, walked, "at_lists")          # list outputs arrive
        at_found = _delay(m, advance, at_lists, "at_found")        # list outputs registered
        found = [Signal(self._index_shape, name=f"found{h}") for h in range(self._heads)]
        with m.If(advance):
            m.d.sync += [f.eq(rd.data) for f, rd in zip(found, keys.lists)]
        m.d.comb += [keys.store.addr.eq(_select(m, at_found.head, found, "found_token")),
                     keys.store.en.eq(advance)]
        at_store = _delay(m, advance, at_found, "at_store")        # V arrives
        at_value = _delay(m, advance, at_store, "at_value")        # V registered
        v_word = Signal(self._channels)
        with m.If(advance):
            m.d.sync += v_word.eq(keys.store.data)
        m.d.comb += keys.release.eq(advance & at_found.valid & at_found.end)
        return v_word, at_value
