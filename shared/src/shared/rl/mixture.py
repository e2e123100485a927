"""Data mixtures with exact ratios: which source the next example comes from, and which of its examples.

`MixtureStream(sources, ratios, seed)` turns the ratios into the smallest integer weights (0.7 : 0.3 -> 7 : 3) and
picks sources by smooth weighted round robin: every draw adds each source's weight to its credit, takes the source
with the most credit (ties: the earlier source) and takes the weight total from it. Each period of `sum(weights)`
draws then holds every source exactly `weight` times, spread out rather than in runs (7 : 3 gives
A B A A A B A A B A). Inside a source, examples come in seeded per-epoch permutations (`PromptStream`, seeded by
(seed, source name), so adding a source does not reshuffle the others).

`state_dict()` / `load_state_dict()` hold the credits and every source's position, so a resumed run (CPT, SFT or an
RL prompt stream after a kill) draws exactly what the uninterrupted one would.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from shared.rl.data import PromptStream


def integer_weights(ratios: Mapping[str, float]) -> dict[str, int]:
    """The smallest integers in the same proportions (ratios read as decimals up to 1/1000)."""
    fractions = {}
    for name, ratio in ratios.items():
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(f"mixture ratio of {name!r} must be a number > 0, got {ratio!r}")
        fractions[name] = Fraction(str(ratio)).limit_denominator(1000)
    lcm = math.lcm(*(f.denominator for f in fractions.values()))
    ints = {name: int(f * lcm) for name, f in fractions.items()}
    gcd = math.gcd(*ints.values())
    return {name: w // gcd for name, w in ints.items()}


class MixtureStream:
    """Endless (source, index) draws in exact ratios per period; `sources` maps names to their examples or sizes."""

    def __init__(self, sources: Mapping[str, Sequence[Any] | int], ratios: Mapping[str, float], seed: int = 0,
                 shuffle: bool = True) -> None:
        if not sources:
            raise ValueError("MixtureStream needs at least one source")
        if set(sources) != set(ratios):
            missing, extra = sorted(set(sources) - set(ratios)), sorted(set(ratios) - set(sources))
            raise ValueError(f"MixtureStream: sources without a ratio {missing}, ratios without a source {extra}")
        self.names = list(sources)
        self.sources = {n: (None if isinstance(s, int) else s) for n, s in sources.items()}
        sizes = {n: (s if isinstance(s, int) else len(s)) for n, s in sources.items()}
        for name, size in sizes.items():
            if size < 1:
                raise ValueError(f"mixture source {name!r} is empty")
        self.weights = integer_weights({n: ratios[n] for n in self.names})
        self.period = sum(self.weights.values())
        self.seed = seed
        self.streams = {n: PromptStream(sizes[n], seed=seed * 1_000_003 + zlib.crc32(n.encode()) % 1_000_003,
                                        shuffle=shuffle) for n in self.names}
        self.credit = {n: 0 for n in self.names}
        self.drawn = 0

    def next_source(self) -> str:
        """The next source by smooth weighted round robin (no example is taken)."""
        for name in self.names:
            self.credit[name] += self.weights[name]
        best = max(self.names, key=lambda n: (self.credit[n], -self.names.index(n)))
        self.credit[best] -= self.period
        return best

    def take(self, k: int) -> list[tuple[str, int]]:
        """The next `k` draws as (source name, index into that source)."""
        out = []
        for _ in range(k):
            name = self.next_source()
            out.append((name, self.streams[name].take(1)[0]))
            self.drawn += 1
        return out

    def take_items(self, k: int) -> list[tuple[str, Any]]:
        """The next `k` draws as (source name, example); needs sources given as sequences, not sizes."""
        out = []
        for name, index in self.take(k):
            items = self.sources[name]
            if items is None:
                raise TypeError(f"mixture source {name!r} was given as a size; take() gives its indices")
            out.append((name, items[index]))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "credit": dict(self.credit), "drawn": self.drawn,
                "streams": {n: s.state_dict() for n, s in self.streams.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if dict(state["weights"]) != self.weights:
            raise ValueError(f"mixture state was saved with weights {dict(state['weights'])}, this stream has "
                             f"{self.weights}")
        for name, stream in self.streams.items():
            stream.load_state_dict(state["streams"][name])
        self.credit = {n: int(state["credit"][n]) for n in self.names}
        self.drawn = int(state["drawn"])
