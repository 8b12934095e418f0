"""The service configuration: a TOML file validated with pydantic into `Settings`.

Relative paths are resolved against the directory of the config file. Secrets (the API token,
the repository passphrase, the LINSTOR token) are never in the file itself: only paths to files
holding them. `load_config` raises `ConfigError` (exit code 2) with one line naming the file and
every problem found.

EXAMPLE (parsed by the tests):

    [service]
    listen = "127.0.0.1:8470"        # non-loopback needs allow_remote = true
    token_file = "/etc/drbdbackup/api-token"   # bearer token for POST /v1/jobs
    state_db = "/var/lib/drbdbackup/jobs.sqlite"
    max_jobs = 2                     # jobs running at once, all policies
    max_jobs_per_node = 1            # applied per policy (see scheduler.py)
    linstor_api_rate = 10            # LINSTOR API calls per second, all jobs together
    read_rate_mib = 0                # cap on snapshot/file reads per job, MiB/s (0 = unlimited)
    timezone = "UTC"                 # zone the cron schedules are evaluated in

    [repository]
    location = "/srv/backup/repo"    # or s3://bucket/prefix
    password_file = "/etc/drbdbackup/repo-pass"

    [linstor]
    controllers = "linstor+ssl://ctl1,linstor+ssl://ctl2"
    token_file = "/etc/drbdbackup/linstor-token"
    allow_insecure = false
    cluster = "linstor"              # volume ids are <cluster>.<resource>.<volume-nr>

    [[policy]]
    name = "vms"
    resources = ["vm-db", "vm-web"]
    consistency_group = false        # true: one multi-resource snapshot per run
    schedule = "15 2 * * *"
    keep_last = 7
    keep_daily = 14
    keep_weekly = 8
    verify_sample = 0.05             # 0 = no verification after a backup
    tracker = "auto"
    rpo = "24h"                      # report: a day without a backup fails; any gap > rpo fails
    verify_coverage_days = 7         # report: every retained chunk verified within 7 days; the
    verify_budget_mib = 20480        # service verifies so (drbdverify --subset n/t), <= 20 GiB a run

    [[policy]]
    name = "images"
    files = [{ path = "/srv/images/golden.img", volume_id = "golden" }]
    schedule = "0 */6 * * *"
    keep_last = 7                    # each policy's keep_* rules apply to its own generations
    keep_within = "2d"               # (the record's policy): every generation of the last 2 days
    keep_daily = 14                  # keep_hourly/daily/weekly/monthly/yearly: the newest one of
    keep_monthly = 12                # each of the last N periods (UTC)
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drbdbackup.errors import UsageError
from drbdbackup.linstor.selection import SelectionRule
from drbdbackup.ops.maintenance import PruneRequest
from drbdbackup.service.cron import CronError, parse_cron

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ConfigError(UsageError):
    """The config file is missing, not TOML, or does not validate."""


def split_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:8470' / '[::1]:8470' / 'localhost:8470' -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceSettings(_Strict):
    """[service]"""

    listen: str = "127.0.0.1:8470"
    allow_remote: bool = False
    token_file: str
    state_db: str
    max_jobs: int = Field(2, ge=1, le=64)
    max_jobs_per_node: int = Field(1, ge=1, le=64)
    linstor_api_rate: int = Field(10, ge=1, description="LINSTOR API calls per second, all jobs together")
    read_rate_mib: int = Field(0, ge=0, description="cap on snapshot/file reads per job, MiB/s (0 = unlimited)")
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _listen_ok(self) -> ServiceSettings:
        host, _port = split_listen(self.listen)
        if not is_loopback(host) and not self.allow_remote:
            raise ValueError(f"listen address {host} is not loopback: set allow_remote = true to expose the API")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        return self


class RepositorySettings(_Strict):
    """[repository]"""

    location: str
    password_file: str | None = None


class LinstorSettings(_Strict):
    """[linstor]"""

    controllers: str | None = None
    token_file: str | None = None
    allow_insecure: bool = False
    cluster: str = Field(default="linstor", pattern=NAME_PATTERN)


class ClusterConfig(_Strict):
    """[cluster]: run as the agent of one LINSTOR node (the same file on every node)."""

    node: str = "auto"  # "auto": this host's name, then its addresses, in the node list
    heartbeat_s: float = Field(10.0, gt=0, description="h: heartbeat interval")
    lease_s: float = Field(60.0, gt=0, description="L: a heartbeat unchanged this long = dead agent")
    rank_delay_s: float = Field(15.0, ge=0, description="d: wait per rank before claiming")
    keep_cycles: int = Field(4, ge=1, description="cycles of coordination objects kept")
    max_snapshot_creations: int = Field(
        16, ge=1, description="snapshots being created at once, cluster-wide (LINSTOR stalls at ~20)")
    read_rate_mib: int = Field(
        0, ge=0, description="cap on all snapshot reads of this node together, MiB/s (0 = none)")

    @model_validator(mode="after")
    def _order(self) -> ClusterConfig:
        if self.heartbeat_s >= self.lease_s:
            raise ValueError("heartbeat_s must be shorter than lease_s")
        return self


class FileSource(_Strict):
    """One file or block device of a files policy."""

    path: str
    volume_id: str = Field(pattern=NAME_PATTERN)


class Policy(_Strict):
    """[[policy]]"""

    name: str = Field(pattern=NAME_PATTERN)
    resources: list[str] = Field(default_factory=list)
    resource_groups: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list, description="fnmatch patterns of resource names")
    match: dict[str, str] = Field(default_factory=dict, description="effective properties that must equal")
    exclude: list[str] = Field(default_factory=list, description="fnmatch patterns never selected")
    label_properties: list[str] = Field(default_factory=list)
    files: list[FileSource] = Field(default_factory=list)
    consistency_group: bool = False
    schedule: str | None = None
    every_s: int | None = Field(None, ge=1, description="instead of schedule: every N seconds")
    keep_last: int = Field(0, ge=0)
    keep_daily: int = Field(0, ge=0)
    keep_weekly: int = Field(0, ge=0)
    keep_within: str | None = Field(None, description="e.g. 36h, 2d, 1w: measured from the newest generation")
    keep_hourly: int = Field(0, ge=0)
    keep_monthly: int = Field(0, ge=0)
    keep_yearly: int = Field(0, ge=0)
    verify_sample: float = Field(0.0, ge=0.0, le=1.0)
    rpo: str | None = Field(None, description="recovery point objective, e.g. 24h (report judges each day)")
    verify_coverage_days: int | None = Field(None, ge=1, description="every chunk verified within N days")
    verify_budget_mib: int | None = Field(None, ge=1, description="coverage verification: MiB read per run at most")
    tracker: Literal["auto", "checksum", "reflink", "thin-delta", "full"] = "auto"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_cron(v)
            except CronError as exc:
                raise ValueError(f"bad cron expression {v!r}: {exc}") from None
        return v

    @field_validator("keep_within")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                PruneRequest(keep_within=v).scope()
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("rpo")
    @classmethod
    def _rpo(cls, v: str | None) -> str | None:
        if v is not None:
            from drbdbackup.report.days import parse_duration

            try:
                parse_duration(v)
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _one_schedule(self) -> Policy:
        if self.schedule and self.every_s:
            raise ValueError("use schedule or every_s, not both")
        return self

    @model_validator(mode="after")
    def _one_source(self) -> Policy:
        if self.selects_linstor == bool(self.files):
            raise ValueError("a policy needs exactly one of files = [...] or a LINSTOR selection "
                             "(resources, resource_groups, names, match)")
        return self

    @property
    def selects_linstor(self) -> bool:
        return bool(self.resources or self.resource_groups or self.names or self.match)

    def selection_rule(self) -> SelectionRule:
        """The policy's selection terms for the planner."""
        return SelectionRule(self.name, tuple(self.resources), tuple(self.resource_groups),
                             tuple(self.names), dict(self.match), tuple(self.exclude))

    @property
    def has_retention(self) -> bool:
        return bool(self.keep_last or self.keep_within or self.keep_hourly or self.keep_daily
                     or self.keep_weekly or self.keep_monthly or self.keep_yearly)

    def prune_request(self) -> PruneRequest:
        """The policy's keep rules, applied to the generations recorded for this policy."""
        return PruneRequest(self.keep_last, self.keep_daily, self.keep_weekly,
                            keep_within=self.keep_within, keep_hourly=self.keep_hourly,
                            keep_monthly=self.keep_monthly, keep_yearly=self.keep_yearly,
                            policy=self.name)

    def target(self) -> str:
        """A short description of what the policy backs up (no secrets)."""
        if self.selects_linstor:
            parts = [*self.resources, *(f"group:{g}" for g in self.resource_groups),
                     *(f"name:{n}" for n in self.names),
                     *(f"{k}={v}" for k, v in sorted(self.match.items()))]
            return "resources:" + ",".join(parts)
        return "files:" + ",".join(f.volume_id for f in self.files)


class Settings(_Strict):
    """The whole config file."""

    service: ServiceSettings
    repository: RepositorySettings
    linstor: LinstorSettings = Field(default_factory=lambda: LinstorSettings())
    cluster: ClusterConfig | None = None
    policy: list[Policy] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        names = [p.name for p in self.policy]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate policy name(s): {', '.join(sorted(dup))}")
        return self

    def policy_named(self, name: str) -> Policy | None:
        return next((p for p in self.policy if p.name == name), None)


def _resolve(base: str, path: str | None) -> str | None:
    if path is None or "://" in path:
        return path
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def load_config(path: str) -> Settings:
    """Read and validate `path`; raise ConfigError with one line on any problem."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # tomllib decodes the whole file first (found by fuzzing)
        raise ConfigError(f"config {path} is not UTF-8 (byte {exc.start})") from None
    try:
        cfg = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {_one_line(exc)}") from None
    base = os.path.dirname(os.path.abspath(path))
    cfg.service.token_file = _resolve(base, cfg.service.token_file) or ""
    cfg.service.state_db = _resolve(base, cfg.service.state_db) or ""
    cfg.repository.location = _resolve(base, cfg.repository.location) or ""
    cfg.repository.password_file = _resolve(base, cfg.repository.password_file)
    cfg.linstor.token_file = _resolve(base, cfg.linstor.token_file)
    for p in cfg.policy:
        for f in p.files:
            f.path = _resolve(base, f.path) or f.path
    return cfg
