"""The REST API (aiohttp). GETs are open (bound to loopback by default); POST needs the token.

GET  /v1/status              version, uptime, job counts
GET  /v1/jobs?state=&limit=  newest first
GET  /v1/jobs/{id}
GET  /v1/volumes             last generation per volume with its status
GET  /v1/policies
GET  /v1/cluster             per volume: node, last good generation and age, labels; with a
                             controller: per policy what it selects and why, what is unprotected
POST /v1/jobs                {"policy": NAME, "kind": "backup"|"verify"|"prune"} -> 202 {"id": N}
GET  /metrics                Prometheus text

Errors are JSON `{"error": "one line"}`. The access log is off: no request line (and no header)
is ever logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from drbdbackup.errors import describe
from drbdbackup.ops.maintenance import list_volumes
from drbdbackup.ops.status import status as cluster_status
from drbdbackup.service.metrics import render
from drbdbackup.service.scheduler import Clustered, Scheduler, Stopping
from drbdbackup.service.store import KINDS, STATES, JobStore

SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler", Scheduler)
STORE: web.AppKey[JobStore] = web.AppKey("store", JobStore)
TOKEN: web.AppKey[bytes] = web.AppKey("token", bytes)
STARTED: web.AppKey[float] = web.AppKey("started", float)
VIEW: web.AppKey[dict] = web.AppKey("view", dict)
VIEW_MAX_AGE_S = 30.0


def _version() -> str:
    try:
        return version("drbdbackup")
    except PackageNotFoundError:
        return "unknown"


def _err(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _job_view(job: dict[str, Any]) -> dict[str, Any]:
    out = dict(job)
    for k in ("created", "started", "finished"):
        out[k] = _iso(job.get(k))
    if job.get("started") and job.get("finished"):
        out["duration_s"] = round(job["finished"] - job["started"], 3)
    return out


def authorized(request: web.Request) -> bool:
    """Constant-time check of `Authorization: Bearer <token>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), request.app[TOKEN])


async def status(request: web.Request) -> web.Response:
    counts = await request.app[STORE].counts()
    anchor = await request.app[STORE].anchor()
    sched = request.app[SCHEDULER]
    return web.json_response({
        "version": _version(),
        "uptime_s": round(time.monotonic() - request.app[STARTED], 3),
        "running": counts["running"],
        "queued": counts["queued"],
        "jobs": counts,
        "stopping": sched.stopping,
        "audit_head": {"seq": anchor["seq"], "hash": anchor["hash"]} if anchor else None,
        "audit_regression": anchor["regression"] if anchor else None,
    })


async def jobs(request: web.Request) -> web.Response:
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        return _err(400, f"state must be one of {', '.join(STATES)}")
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        return _err(400, "limit must be an integer")
    if not 1 <= limit <= 1000:
        return _err(400, "limit must be between 1 and 1000")
    rows = await request.app[STORE].list_jobs(state=state, limit=limit)
    return web.json_response({"jobs": [_job_view(r) for r in rows]})


async def job(request: web.Request) -> web.Response:
    try:
        job_id = int(request.match_info["id"])
    except ValueError:
        return _err(400, "job id must be an integer")
    row = await request.app[STORE].get(job_id)
    if row is None:
        return _err(404, f"no job {job_id}")
    return web.json_response(_job_view(row))


async def create_job(request: web.Request) -> web.Response:
    if not authorized(request):
        return _err(401, "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"})
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        return _err(400, "body must be a JSON object")
    if not isinstance(body, dict):
        return _err(400, "body must be a JSON object")
    unknown = set(body) - {"policy", "kind"}
    if unknown:
        return _err(400, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    name, kind = body.get("policy"), body.get("kind", "backup")
    if not isinstance(name, str) or not name:
        return _err(400, "policy (a string) is required")
    if kind not in KINDS:
        return _err(400, f"kind must be one of {', '.join(KINDS)}")
    sched = request.app[SCHEDULER]
    policy = sched.settings.policy_named(name)
    if policy is None:
        return _err(404, f"no policy named {name!r}")
    try:
        job_id = await sched.submit(policy, kind)
    except Stopping as exc:
        return _err(503, str(exc))
    except Clustered as exc:
        return _err(409, str(exc))
    return web.json_response({"id": job_id, "state": "queued", "url": f"/v1/jobs/{job_id}"}, status=202)


def _volume_summary(gens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    vols: dict[str, dict[str, Any]] = {}
    for g in gens:  # oldest first: the last one seen is the latest
        v = vols.setdefault(g["volume_id"], {"volume_id": g["volume_id"], "generations": 0})
        v["generations"] += 1
        v["last"] = {k: g.get(k) for k in ("generation", "created", "mode", "tracker", "size_bytes",
                                            "status", "fallback_reason")}
    return sorted(vols.values(), key=lambda v: v["volume_id"])


async def volumes(request: web.Request) -> web.Response:
    ctx = request.app[SCHEDULER].ctx
    try:
        gens = await asyncio.to_thread(list_volumes, ctx.repo)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        return _err(503, f"repository unavailable: {describe(exc)[1]}")
    return web.json_response({"volumes": _volume_summary(gens)})


def cluster_view(ctx: Any) -> dict[str, Any]:
    """The `drbdbackup status --plan --unprotected` object for the service's config (blocking)."""
    settings = ctx.settings
    rules = [p.selection_rule() for p in settings.policy if p.selects_linstor]
    controller = ctx.controller() if rules or settings.linstor.controllers else None
    return cluster_status(ctx.repo, controller, rules).to_dict()


async def _fresh_view(app: web.Application, max_age_s: float = VIEW_MAX_AGE_S) -> dict[str, Any]:
    """The cluster view, recomputed when older than `max_age_s` (scrapes stay cheap)."""
    cached: dict[str, Any] | None = app[VIEW].get("view")
    if cached is None or time.monotonic() - app[VIEW]["at"] > max_age_s:
        cached = await asyncio.to_thread(cluster_view, app[SCHEDULER].ctx)
        app[VIEW].update(view=cached, at=time.monotonic())
    return cached


async def cluster(request: web.Request) -> web.Response:
    try:
        view = await _fresh_view(request.app, 0)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        return _err(503, f"cluster view unavailable: {describe(exc)[1]}")
    return web.json_response(view)


async def policies(request: web.Request) -> web.Response:
    sched = request.app[SCHEDULER]
    out = []
    for p in sched.settings.policy:
        nxt = sched.next_run(p)
        out.append({
            "name": p.name,
            "target": p.target(),
            "resources": p.resources,
            "resource_groups": p.resource_groups,
            "names": p.names,
            "match": p.match,
            "exclude": p.exclude,
            "label_properties": p.label_properties,
            "files": [f.volume_id for f in p.files],
            "schedule": p.schedule,
            "next_run": nxt.isoformat() if nxt else None,
            "keep_last": p.keep_last, "keep_daily": p.keep_daily, "keep_weekly": p.keep_weekly,
            "keep_within": p.keep_within, "keep_hourly": p.keep_hourly,
            "keep_monthly": p.keep_monthly, "keep_yearly": p.keep_yearly,
            "verify_sample": p.verify_sample,
            "verify_coverage_days": p.verify_coverage_days, "verify_budget_mib": p.verify_budget_mib,
            "rpo": p.rpo,
            "tracker": p.tracker,
        })
    return web.json_response({"policies": out})


async def metrics(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        view: dict[str, Any] | None = await _fresh_view(request.app)
    except Exception:  # noqa: BLE001 - job metrics are served even when the view is not
        view = None
    text = render(await store.finished_jobs(), await store.counts(), view, await store.anchor())
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn aiohttp's HTML error pages (404/405) into one-line JSON errors."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.Response(status=exc.status, text=json.dumps({"error": exc.reason}),
                            content_type="application/json")


def build_app(scheduler: Scheduler, store: JobStore, token: bytes) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=64 * 1024)
    app[SCHEDULER] = scheduler
    app[STORE] = store
    app[TOKEN] = token
    app[STARTED] = time.monotonic()
    app[VIEW] = {}
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/jobs", jobs)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs/{id}", job)
    app.router.add_get("/v1/volumes", volumes)
    app.router.add_get("/v1/policies", policies)
    app.router.add_get("/v1/cluster", cluster)
    app.router.add_get("/metrics", metrics)
    return app
