"""Which chunk positions a run checks, and how confident a sample is.

Rules (stable; tests and CI drills rely on them):

* ``--full``: every chunk position of the generation.
* ``--sample P`` (0 < P <= 1): exactly ``m = max(1, ceil(P * A))`` of the ``A`` chunk
  positions (none when ``A == 0``), chosen by ``random.Random(f"{seed}:{volume_id}:{generation}")
  .sample(range(A), m)``. The same seed therefore picks the same positions again.
* ``--subset n/t`` (1 <= n <= t): the positions whose chunk id (64 hex) has
  ``int(id[:8], 16) % t == n - 1``. The zero marker has bucket 0 (run ``1/t``). Pack content
  hashes are partitioned the same way by pack id. Runs ``1/t`` .. ``t/t`` together cover every
  position and every pack exactly once.

Confidence: if ``k`` chunks were corrupted, a uniform sample that checks a fraction ``p = m/A``
misses all of them with probability about ``(1 - p) ** k`` (exactly, without replacement, it is
at most that).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


def bucket(hex_id: str, t: int) -> int:
    """Subset bucket of an id: ``int(id[:8], 16) % t`` (0-based)."""
    return int(hex_id[:8], 16) % t


@dataclass(frozen=True)
class Selection:
    """How much of each generation a run reads."""

    mode: str  # "sample" | "full" | "subset"
    rate: float = 0.05
    seed: int = 0
    n: int = 1
    t: int = 1

    @classmethod
    def parse_subset(cls, text: str, seed: int = 0) -> Selection:
        """``"n/t"`` -> Selection; raises ValueError."""
        try:
            a, b = text.split("/")
            n, t = int(a), int(b)
        except ValueError:
            raise ValueError(f"--subset must look like n/t, got {text!r}") from None
        if not 1 <= n <= t:
            raise ValueError(f"--subset n/t needs 1 <= n <= t, got {text!r}")
        return cls("subset", 1.0, seed, n, t)

    def sample_positions(self, chunk_count: int, volume_id: str, generation: str) -> set[int] | None:
        """Positions for ``sample`` mode; None means "decide per id" (full/subset)."""
        if self.mode != "sample":
            return None
        if chunk_count == 0:
            return set()
        m = min(chunk_count, max(1, math.ceil(self.rate * chunk_count)))
        rng = random.Random(f"{self.seed}:{volume_id}:{generation}")
        return set(rng.sample(range(chunk_count), m))

    def id_selected(self, hex_id: str) -> bool:
        """For full/subset mode: is a position holding this chunk id checked?"""
        if self.mode == "full":
            return True
        return bucket(hex_id, self.t) == self.n - 1

    def pack_hashed(self, packid: str) -> bool:
        """Is this pack read whole and its content hash compared with its name?"""
        if self.mode == "full":
            return True
        if self.mode == "subset":
            return bucket(packid, self.t) == self.n - 1
        return False

    def describe(self) -> str:
        if self.mode == "full":
            return "full"
        if self.mode == "subset":
            return f"subset {self.n}/{self.t}"
        return f"sample {self.rate:g} (seed {self.seed})"


def escape_probability(checked: int, total: int, k: int) -> float:
    """About ``(1 - p) ** k`` with ``p = checked / total``: all k bad chunks escape the sample."""
    if total <= 0:
        return 0.0 if checked else 1.0
    p = min(1.0, checked / total)
    return (1.0 - p) ** k


def confidence_words(mode: str, checked: int, total: int) -> str:
    """One sentence stating what the sample size means."""
    if mode == "full":
        return "full check: every chunk was read; no corrupted chunk can escape"
    if mode == "subset":
        return "deterministic subset: complete only together with the other t-1 subset runs"
    e1 = escape_probability(checked, total, 1)
    e10 = escape_probability(checked, total, 10)
    return (
        f"if 1 chunk were corrupted, this sample would miss it with probability {e1:.2%}; "
        f"if 10 were, it would miss all of them with probability {e10:.2%}"
    )
