"""The cluster as one planning pass sees it: every resource definition with its group and
effective properties, every group, node and replica — in a constant number of API calls,
whatever the number of resources."""

from __future__ import annotations

from dataclasses import dataclass, field

from drbdbackup.linstor.client import Controller, NodeInfo, Replica
from drbdbackup.linstor.selection import ResourceView


@dataclass
class Inventory:
    """A consistent-enough view for one cycle (each part is one list call)."""

    resources: list[ResourceView] = field(default_factory=list)
    groups: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> its properties
    nodes: list[NodeInfo] = field(default_factory=list)
    replicas: dict[str, list[Replica]] = field(default_factory=dict)  # resource -> replicas
    uuids: dict[str, str] = field(default_factory=dict)  # resource -> definition uuid


def effective_props(group_props: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    """A definition's properties over its group's (LINSTOR's effective properties)."""
    return {**group_props, **own}


def take_inventory(ctl: Controller, *, with_replicas: bool = True) -> Inventory:
    """Groups, definitions, nodes (and replicas): 3 or 4 API calls."""
    groups = ctl.resource_groups()
    inv = Inventory(groups=groups, nodes=ctl.nodes())
    for rd in ctl.resource_definitions():
        inv.uuids[rd.name] = rd.uuid
        inv.resources.append(ResourceView(rd.name, rd.group or None,
                                          effective_props(groups.get(rd.group, {}), rd.props)))
    if with_replicas:
        inv.replicas = ctl.all_replicas()
    return inv
