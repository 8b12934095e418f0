"""Which LINSTOR node this host is (`[cluster] node = "auto"` or a name)."""

from __future__ import annotations

import socket

from drbdbackup.errors import UsageError
from drbdbackup.linstor.client import NodeInfo


def local_addresses() -> set[str]:
    """This host's IP addresses (from its names; loopback included)."""
    out: set[str] = set()
    for name in {socket.gethostname(), socket.getfqdn(), "localhost"}:
        try:
            for info in socket.getaddrinfo(name, None):
                out.add(str(info[4][0]))
        except OSError:
            continue
    return out


def resolve_node(nodes: list[NodeInfo], configured: str, hostname: str | None = None,
                 addresses: set[str] | None = None) -> str:
    """The node name for `configured` ("auto": this host's name, then its interface addresses)."""
    names = sorted(n.name for n in nodes)
    if configured != "auto":
        if configured not in names:
            raise UsageError(f"node {configured!r} is not a LINSTOR node; nodes are: {', '.join(names)}")
        return configured
    host = hostname or socket.gethostname()
    for candidate in (host, host.split(".")[0]):
        if candidate in names:
            return candidate
    mine = addresses if addresses is not None else local_addresses()
    by_address = sorted(n.name for n in nodes if mine & set(n.addresses)
                        and not all(a.startswith("127.") for a in set(n.addresses) & mine))
    if len(by_address) == 1:
        return by_address[0]
    if len(by_address) > 1:
        raise UsageError(f"this host matches several LINSTOR nodes by address ({', '.join(by_address)}): "
                         "set [cluster] node or --node")
    raise UsageError(f"this host ({host}) is none of the LINSTOR nodes ({', '.join(names)}): "
                     "set [cluster] node or --node")
