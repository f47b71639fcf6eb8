"""A serial line that loses and damages bytes, between the host driver and a port (tests and
``spikeforge.verif.uart_run``'s ``wrap``): what a noisy cable or an overrun does to a UART."""

__all__ = ["LossyLine"]


class LossyLine:
    """``port`` (pyserial-like) with each byte written or read dropped with probability
    ``drop`` or one of its bits flipped with probability ``flip`` (``rng``: a
    ``random.Random``). ``dropped`` and ``flipped`` count what was done, each way."""

    def __init__(self, port, *, rng, flip=0.0, drop=0.0):
        self._port, self._rng = port, rng
        self.flip, self.drop = float(flip), float(drop)
        self.dropped = self.flipped = 0

    def _damage(self, data):
        out = bytearray()
        for byte in bytes(data):
            roll = self._rng.random()
            if roll < self.drop:
                self.dropped += 1
                continue
            if roll < self.drop + self.flip:
                self.flipped += 1
                byte ^= 1 << self._rng.randrange(8)
            out.append(byte)
        return bytes(out)

    def write(self, data):
        self._port.write(self._damage(data))
        return len(data)

    def read(self, size=1):
        return self._damage(self._port.read(size))

    @property
    def in_waiting(self):
        return self._port.in_waiting

    def reset_input_buffer(self):
        self._port.reset_input_buffer()

    def close(self):
        self._port.close()
