"""Crashes the atheris harnesses of fuzz/ found (issue 20), one test each, kept fixed.

- product_service_toml: a service config that is not UTF-8 was "internal error:
  UnicodeDecodeError" (exit 3) in `serve`/`status --config`; now one ConfigError line (exit 2).
- product_rest: a POST /v1/jobs body of deeply nested JSON raised RecursionError in the handler
  (HTTP 500, a traceback in the service log); now 400 with one JSON error line.
- product_node: a tree repeating one subtree whose leaves are empty made the walk take
  fanout^(height-1) steps (2^39 for 40 nodes of fanout 2) while never yielding an id, so the
  chunk_count bound never fired (restore, list, prune hung); now the walk stops after more
  leaves than the record's chunk_count, and an inner node without children is refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import blake3
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from drbdbackup.errors import EXIT_USAGE, describe
from drbdbackup.repo import tree
from drbdbackup.service import api
from drbdbackup.service.config import ConfigError, load_config
from tests.hostile.hostile import nested_arrays


def test_service_config_that_is_not_utf8_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "service.toml"
    path.write_bytes(b'[service]\nlisten = "127.0.0.1:8470"\nstate_db\xed = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    code, line = describe(info.value)
    assert code == EXIT_USAGE and "not UTF-8" in line and "\n" not in line


class _Scheduler:
    stopping = False

    class settings:  # noqa: N801 - stands for Settings
        @staticmethod
        def policy_named(name: str) -> Any:
            return object() if name == "nightly" else None

    async def submit(self, policy: Any, kind: str) -> int:
        return 7


async def test_a_deeply_nested_request_body_is_a_400_not_a_500() -> None:
    app = api.build_app(_Scheduler(), object(), b"tok")  # type: ignore[arg-type]
    headers = {"Authorization": "Bearer tok", "Content-Type": "application/json"}
    async with TestServer(app, host="127.0.0.1") as server, ClientSession() as http:
        url = str(server.make_url("/v1/jobs"))
        async with http.post(url, data=nested_arrays(30_000), headers=headers) as r:
            assert r.status == 400
            assert (await r.json())["error"] == "body must be a JSON object"
        async with http.post(url, json={"policy": "nightly"}, headers=headers) as r:
            assert r.status == 202  # the service still answers


def _repeated_empty_subtree(height: int) -> tuple[list[bytes], Any]:
    """Node i has level height-1-i and two children that both resolve to node i+1; the leaf is
    empty. Ids are real hashes, as a hostile writer would store them."""
    nodes: dict[bytes, bytes] = {}
    child = b""
    for level in range(height):
        data = tree.encode_node(level, [child, child] if level else [])
        child = _h(data)
        nodes[child] = data
    return [child], nodes.__getitem__


def _h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


@pytest.mark.parametrize("chunk_count", [0, 1, 5])
def test_a_tree_of_repeated_empty_subtrees_is_refused_quickly(chunk_count: int) -> None:
    (root,), load = _repeated_empty_subtree(40)
    start = time.monotonic()
    with pytest.raises(tree.TreeFormatError, match="more leaves"):
        tree.read_chunk_ids(root, 40, load, fanout=2, chunk_count=chunk_count)
    with pytest.raises(tree.TreeFormatError, match="more leaves"):
        list(tree.walk_tree(root, 40, load, fanout=2, chunk_count=chunk_count))
    assert time.monotonic() - start < 1


def test_an_inner_node_without_children_is_refused() -> None:
    leafless = tree.encode_node(1, [])
    with pytest.raises(tree.TreeFormatError, match="no children"):
        tree.read_chunk_ids(b"r" * 32, 2, lambda _nid: leafless, fanout=2, chunk_count=0)


def test_trees_the_writer_builds_still_read() -> None:
    for count in (0, 1, 2, 3, 4, 5, 17):
        ids = [bytes([i]) * 32 for i in range(count)]
        root, height, nodes = tree.build_tree(ids, 2, _h)
        store = dict(nodes)
        assert tree.read_chunk_ids(root, height, store.__getitem__, fanout=2,
                                   chunk_count=count) == ids
