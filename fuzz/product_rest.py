"""The service's REST handlers that read client input (drbdbackup/service/api.py): the body of
POST /v1/jobs, the query of GET /v1/jobs, the id of GET /v1/jobs/{id}, through the JSON error
middleware, on aiohttp's own request objects.

Input: a selector byte (0: POST body, 1: query string, 2: job id), then the bytes. Documented
outcome: a response with a 2xx or 4xx status; an exception or a 5xx other than 503 is a crash.
"""

import asyncio
import sys
from typing import Any
from urllib.parse import quote_from_bytes

import atheris
from aiohttp.test_utils import make_mocked_request

import drbdbackup.ops.maintenance  # noqa: F401 - what the handlers call: imported first, so only
import drbdbackup.ops.status  # noqa: F401 - the handlers are instrumented (a quick start)
import drbdbackup.service.metrics  # noqa: F401
import drbdbackup.service.scheduler  # noqa: F401
import drbdbackup.service.store  # noqa: F401

with atheris.instrument_imports(include=["drbdbackup.service.api"]):
    from drbdbackup.service import api

import _common

TOKEN = b"fuzz-token"


class Scheduler:
    stopping = False

    class settings:  # noqa: N801 - stands for Settings
        @staticmethod
        def policy_named(name: str) -> Any:
            return object() if name == "nightly" else None

    async def submit(self, policy: Any, kind: str) -> int:
        return 7


class Store:
    async def get(self, job_id: int) -> dict[str, Any] | None:
        return None

    async def list_jobs(self, **_kw: Any) -> list[dict[str, Any]]:
        return []


class Payload:
    def __init__(self, body: bytes) -> None:
        self.parts = [body, b""]

    def set_read_chunk_size(self, _size: int) -> None:
        pass

    async def readany(self) -> bytes:
        return self.parts.pop(0) if self.parts else b""


APP = api.build_app(Scheduler(), Store(), TOKEN)  # type: ignore[arg-type]
LOOP = asyncio.new_event_loop()
AUTH = {"Authorization": "Bearer fuzz-token", "Content-Type": "application/json"}


async def _call(data: bytes) -> Any:
    sel, rest = data[0] % 3, data[1:]
    if sel == 0:
        req = make_mocked_request("POST", "/v1/jobs", headers=AUTH, app=APP,
                                  payload=Payload(rest),  # type: ignore[arg-type]
                                  client_max_size=64 * 1024)
        return await api.json_errors(req, api.create_job)
    if sel == 1:
        req = make_mocked_request("GET", "/v1/jobs?" + rest.decode("latin-1"), headers=AUTH,
                                  app=APP)
        return await api.json_errors(req, api.jobs)
    req = make_mocked_request("GET", "/v1/jobs/" + quote_from_bytes(rest), headers=AUTH,
                              app=APP, match_info={"id": rest.decode("utf-8", "replace")})
    return await api.json_errors(req, api.job)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    resp = LOOP.run_until_complete(_call(data))
    if not (200 <= resp.status < 500 or resp.status == 503):
        raise AssertionError(f"status {resp.status}: {resp.text}")
    if resp.status >= 400:
        _common.one_line_str(resp.text)


if __name__ == "__main__":
    _common.run(test_one_input, "binary")
    sys.exit(0)
