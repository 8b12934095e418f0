"""What the phases of one verification run share: the repository, selection and verdicts so far."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .format import Record, pack_name
from .repository import Repository
from .results import CheckResult
from .sampler import Selection


@dataclass
class RunState:
    """Checks, records and blob-copy verdicts of one run, indexed by check number ``ci``."""

    repo: Repository
    sel: Selection
    checks: list[CheckResult] = field(default_factory=list)
    records: list[Record | None] = field(default_factory=list)
    bad: dict[tuple[bytes, str], str] = field(default_factory=dict)  # (blob id, pack) -> reason
    verified: set[bytes] = field(default_factory=set)
    needed: dict[bytes, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    zero_positions: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    referenced_packs: set[str] = field(default_factory=set)

    @property
    def fanout(self) -> int:
        return self.repo.config.tree_fanout

    def reference(self, bid: bytes) -> None:
        """Note every pack holding a copy of ``bid`` as used by the checked generations."""
        for loc in self.repo.locations.get(bid, ()):
            self.referenced_packs.add(loc.pack)

    def no_copy_reason(self, bid: bytes) -> str:
        """Why each listed copy of a blob is unusable, one clause per pack."""
        reasons = []
        hexid = bid.hex()
        for loc in self.repo.locations.get(bid, ()):
            if (hexid, loc.pack) in self.repo.quarantined:
                why = "quarantined"
            elif (bid, loc.pack) in self.bad:
                why = self.bad[(bid, loc.pack)]
            else:
                why = self.repo.pack_state(loc.pack).damage or "unread"
            reasons.append(f"{pack_name(loc.pack)}: {why}")
        return "; ".join(reasons) if reasons else "no index entry"

    def first_pack(self, bid: bytes) -> str | None:
        """Object name of the first pack listed for a blob (to name in findings)."""
        locs = self.repo.locations.get(bid)
        return pack_name(locs[0].pack) if locs else None
