"""The verification pass: structure, content and source comparison.

Phases:

A. per generation: open the record, walk the tree (:mod:`verify.walk`: every node is read and
   its id re-hashed, level/count checked against the construction rule), choose the chunk
   positions to check;
B. content (:mod:`verify.content`): read the chosen blobs grouped by pack, decode, re-hash,
   compare with the source (:mod:`verify.source`);
C. per generation (:mod:`verify.damage`): walk again and name every chunk position and tree
   node left without an intact copy, with the volume byte ranges affected.
"""

from __future__ import annotations

from dataclasses import dataclass

from .content import ContentPass
from .damage import copy_findings, name_failed_chunks, pack_findings, write_quarantine
from .errors import UsageError
from .format import ZERO_ID, FormatError, Record, chunk_range, generation_name, level_sizes
from .keys import SealError
from .repository import Repository
from .results import CheckResult, Finding, RunResult
from .sampler import Selection, confidence_words, escape_probability
from .source import SourceComparer
from .state import RunState
from .store import ObjectMissing
from .walk import TreeWalker


@dataclass
class Options:
    """What to check and how."""

    selection: Selection
    source: str | None = None
    quarantine: bool = True


def select_targets(
    gens: dict[str, list[str]], volume_id: str | None, generation: str | None
) -> list[tuple[str, str]]:
    """(volume, generation) pairs to check; ``generation`` is an id, ``latest`` or ``all``."""
    if volume_id is not None:
        if volume_id not in gens:
            raise UsageError(f"no generations for volume {volume_id}")
        gens = {volume_id: gens[volume_id]}
    out: list[tuple[str, str]] = []
    for vol, gs in gens.items():
        if generation in (None, "latest"):
            out.append((vol, gs[-1]))
        elif generation == "all":
            out.extend((vol, g) for g in gs)
        elif generation in gs:
            out.append((vol, generation))
    if generation not in (None, "latest", "all") and not out:
        raise UsageError(f"generation {generation} not found")
    return out


class Verifier:
    """One verification run over a set of generations (none: only the repository-wide checks)."""

    def __init__(self, repo: Repository, opts: Options) -> None:
        self.repo = repo
        self.opts = opts
        self.st = RunState(repo, opts.selection)
        self.walker = TreeWalker(self.st)
        self.source = SourceComparer(self.st, opts.source)

    def run(self, targets: list[tuple[str, str]]) -> RunResult:
        if self.opts.source is not None and len(targets) != 1:
            raise UsageError("--source needs exactly one volume and generation (use --volume-id)")
        st = self.st
        self.source.open()
        try:
            for vol, gen in targets:
                self._phase_a(vol, gen)
            ContentPass(st, self.source).run()
            self.source.compare_zero_positions()
        finally:
            self.source.close()
        for ci in range(len(st.checks)):
            name_failed_chunks(st, self.walker, ci, self.source)
        result = RunResult(self.repo.store.location, st.sel.describe(), st.sel.seed, st.checks)
        result.empty = not targets
        result.findings = list(self.repo.findings) + pack_findings(st) + copy_findings(st)
        if self.opts.quarantine:
            result.quarantined = write_quarantine(st)
        return result

    def _open_record(self, chk: CheckResult) -> Record | None:
        """The record of one check, or None with a finding saying why it cannot be used."""
        vol, gen = chk.volume_id, chk.generation
        try:
            return self.repo.read_record(vol, gen)
        except ObjectMissing:
            msg = "generation record is missing"
        except SealError:
            msg = "generation record does not open (GCM tag mismatch)"
        except FormatError as e:
            msg = f"generation record is invalid: {e}"
        chk.findings.append(Finding("record", f"{msg}; the whole volume is unrestorable",
                                    generation_name(vol, gen), vol, gen))
        return None

    def _phase_a(self, vol: str, gen: str) -> None:
        st = self.st
        ci = len(st.checks)
        chk = CheckResult(vol, gen, mode=st.sel.mode)
        st.checks.append(chk)
        rec = self._open_record(chk)
        st.records.append(rec)
        chk.structure_checked = True
        if rec is None:
            return
        chk.chunks_total = rec.chunk_count
        chk.source = self.opts.source
        sizes = level_sizes(rec.chunk_count, st.fanout)
        if rec.tree_height != len(sizes):
            chk.findings.append(
                Finding("record", f"tree_height {rec.tree_height} but {rec.chunk_count} chunks "
                        f"with fanout {st.fanout} need {len(sizes)} levels",
                        generation_name(vol, gen), vol, gen, rec.root.hex(), [(0, rec.size_bytes)])
            )
        sample = st.sel.sample_positions(rec.chunk_count, vol, gen)
        for pos, cid in self.walker.walk(ci, rec, first=True):
            chosen = pos in sample if sample is not None else st.sel.id_selected(cid.hex())
            if chosen:
                s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
                chk.chunks_checked += 1
                chk.bytes_checked += e - s
            if cid == ZERO_ID:
                if chosen:
                    st.zero_positions[ci].append(pos)
                continue
            st.reference(cid)
            if chosen:
                st.needed[cid].append((ci, pos))
        chk.confidence = confidence_words(st.sel.mode, chk.chunks_checked, chk.chunks_total)
        if st.sel.mode == "sample":
            chk.miss_probability = {
                str(k): round(escape_probability(chk.chunks_checked, chk.chunks_total, k), 6)
                for k in (1, 10)
            }
