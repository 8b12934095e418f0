"""Day statuses against a brute-force model (hypothesis): backups at whole hours, the RPO in
whole hours, and the question "was the newest backup older than the RPO?" asked at every
half hour of every day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.report.build import Chain, PolicyTerms, ReportInput, build_body

D0 = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 6


def _expected(hours: list[int], rpo: int, now: int) -> list[str]:
    first = min(hours) if hours else None
    out = []
    for d in range(DAYS):
        lo, hi = 24 * d, 24 * d + 24
        if lo >= now:
            out.append("future")
            continue
        if first is None or hi <= first:
            out.append("not-protected-yet")
            continue
        bad = False
        for k in range(lo, min(hi, now)):
            t = k + 0.5
            last = max((h for h in hours if h <= t), default=None)
            bad |= last is not None and t - last > rpo
        if any(lo <= h < hi for h in hours):
            out.append("late" if bad else "ok")
        else:
            out.append("missed" if hi <= now or bad else "pending")
    return out


@settings(max_examples=150, deadline=None)
@given(hours=st.lists(st.integers(0, 24 * DAYS - 1), max_size=12, unique=True),
       rpo=st.integers(1, 60), now=st.integers(1, 24 * DAYS))
def test_day_status_matches_brute_force(hours: list[int], rpo: int, now: int) -> None:
    hours = [h for h in hours if h < now]  # nothing is recorded in the future
    entries = [{"seq": i + 1, "time": (D0 + timedelta(hours=h)).isoformat(), "event": "backup",
                "prev": "0" * 64, "details": {"volume_id": "v", "generation": f"g{h}"}}
               for i, h in enumerate(sorted(hours))]
    entries.append({"seq": 99, "time": D0.isoformat(), "event": "init", "prev": "0" * 64,
                    "details": {}})
    inp = ReportInput("r" * 64, entries, Chain(True, "0" * 64), [], D0 + timedelta(hours=now),
                      date(2026, 3, 1), date(2026, 3, DAYS), [PolicyTerms("p", 99, volume_ids=("v",))],
                      rpo_override_s=rpo * 3600, volume_id="v" if hours else None)
    body = build_body(inp)
    if not hours:
        assert body["volumes"] == []  # a volume nothing ever backed up is not in the log
        return
    (vol,) = body["volumes"]
    assert [d["status"] for d in vol["days"]] == _expected(hours, rpo, now)
