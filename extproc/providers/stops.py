"""Stop sequences applied by the gateway, for providers that refuse some the client sent.

OpenAI semantics: the answer ends just before the first occurrence of any stop string, the
string itself is not returned, and ``finish_reason`` is ``"stop"``. Anthropic refuses
whitespace-only stop sequences (``"\\n"`` is a common one), so the translator sends the others
and the response normalizer applies these here: the client receives what OpenAI would send.
The provider may generate (and bill) a little past the cut: that is the price of emulation.
"""

from __future__ import annotations


def cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """(text up to the first stop string, whether one was found)."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not found:
        return text, False
    return text[:min(found)], True


class StopScanner:
    """Applies stop strings to text that arrives in pieces (a stream).

    ``feed(piece)`` returns the text safe to send now: a stop string may straddle two
    pieces, so up to ``longest stop - 1`` characters are held back until the next piece
    (or ``flush()``). After a stop string is seen, ``stopped`` is True and nothing more
    is returned.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self._keep = max((len(s) for s in self.stops), default=1) - 1
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._pending += piece
        text, hit = cut(self._pending, self.stops)
        if hit:
            self.stopped = True
            self._pending = ""
            return text
        if len(self._pending) <= self._keep:
            return ""
        ready, self._pending = self._pending[:len(self._pending) - self._keep], self._pending[-self._keep:] \
            if self._keep else ""
        return ready

    def flush(self) -> str:
        """The held-back tail, at the end of a text block."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out
