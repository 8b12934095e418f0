"""Test-only pause points: a test sets an environment variable, waits for the announcement on
stderr (a warning line, through logging like every other one below the front ends) and kills
the process while it sleeps there. Nothing happens unless a test asked for it."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def pause(announcement: str, seconds: float) -> None:
    """Announce `announcement` as a warning, then sleep `seconds`."""
    log.warning("%s", announcement)
    time.sleep(seconds)
