"""Cluster coordination: one agent per satellite, coordinated through create-exclusive objects
in the shared repository (docs/format.md, "Cluster coordination objects").

Pure logic: `names`, `schema`, `liveness`, `cycle`, `ranking`, `claims`, `groups`.
I/O: `store` (the backend), `agent` (heartbeat, observation, store clock), `coordinator` and
`group_coord` (the API the service calls), `status` (the cluster view).
"""

from drbdbackup.cluster.agent import Clocks, ClusterSettings
from drbdbackup.cluster.claims import Disposition, Step
from drbdbackup.cluster.coordinator import Claim, Coordinator
from drbdbackup.cluster.cycle import CronSlots, PeriodicSlots
from drbdbackup.cluster.errors import (
    DuplicateAgent,
    ExclusiveCreateUnsupported,
    Fenced,
    GroupIncomplete,
)
from drbdbackup.cluster.group_coord import GroupCoordinator, MemberOutcome
from drbdbackup.cluster.names import ClusterKey, KeyKind
from drbdbackup.cluster.ranking import Candidate

__all__ = [
    "Candidate", "Claim", "Clocks", "ClusterKey", "ClusterSettings", "Coordinator", "CronSlots",
    "Disposition", "DuplicateAgent", "ExclusiveCreateUnsupported", "Fenced", "GroupCoordinator",
    "GroupIncomplete", "KeyKind", "MemberOutcome", "PeriodicSlots", "Step",
]
