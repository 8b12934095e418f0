"""The service's TOML config (drbdbackup/service/config.py load_config), as `serve --config`
reads it. Documented error: ConfigError (one line).
"""

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.service import config

import _common

PATH = os.path.join(tempfile.mkdtemp(prefix="fuzz-toml-", dir="/dev/shm" if os.path.isdir(
    "/dev/shm") else None), "service.toml")


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as fh:
        fh.write(data)
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
