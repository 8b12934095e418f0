"""Errors of the cluster coordination layer (each maps to an exit code via its base class)."""

from __future__ import annotations

from drbdbackup.errors import BackendError, EnvironmentFailure, UsageError


class Fenced(EnvironmentFailure):
    """This claim may not commit: the cycle is committed, superseded, released or pruned.

    The caller must abort: write no generation record, delete its snapshot.
    """


class DuplicateAgent(EnvironmentFailure):
    """Another live agent runs under this node name (alarm: stop, fix the configuration)."""


class ExclusiveCreateUnsupported(UsageError):
    """The repository backend cannot create objects exclusively: cluster mode is refused."""


class GroupIncomplete(EnvironmentFailure):
    """A consistency-group commit was attempted before every member was ready."""


class BadClusterObject(BackendError):
    """A cluster object exists but its content cannot be parsed."""
