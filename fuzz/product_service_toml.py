"""The service's TOML config (drbdbackup/service/config.py load_config), as `serve --config`
reads it. Documented error: ConfigError (one line).
"""

import os
import sys

import atheris

import drbdbackup.linstor.selection  # noqa: F401 - imported first, so only the config's own
import drbdbackup.ops.maintenance  # noqa: F401 - parsing is instrumented (a quick start)

with atheris.instrument_imports(include=["drbdbackup.service.config", "drbdbackup.service.cron"]):
    from drbdbackup.service import config

import _common

FD = os.memfd_create("service.toml")  # an in-memory file: nothing left behind
PATH = f"/proc/self/fd/{FD}"


def test_one_input(data: bytes) -> None:
    os.ftruncate(FD, 0)
    os.pwrite(FD, data, 0)
    try:
        cfg = config.load_config(PATH)
    except config.ConfigError as exc:
        _common.one_line_str(exc)
        return
    for policy in cfg.policy:
        policy.target()


if __name__ == "__main__":
    _common.run(test_one_input, "binary")
    sys.exit(0)
