"""PDF from the HTML report with headless Chromium (`--print-to-pdf`), bounded in time."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

from drbdbackup.errors import EnvironmentFailure

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S, TIMEOUT_PER_MB_S = 120.0, 40.0  # a year of 20 volumes (7.7 MB of HTML) took 147 s


def find_chromium() -> str | None:
    explicit = os.environ.get("DRBDBACKUP_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)


def _run(cmd: list[str], timeout_s: float, env: dict[str, str]) -> tuple[bytes, int]:
    """Run Chromium in its own process group; on timeout the whole group is killed."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot run Chromium ({cmd[0]}): {exc.strerror}") from None
    try:
        _out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise EnvironmentFailure(f"Chromium did not print the PDF within {timeout_s:.0f} s") from None
    finally:
        try:  # helpers Chromium left behind in its group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return err, proc.returncode


def html_to_pdf(html: bytes, timeout_s: float | None = None) -> bytes:
    """Print `html` to PDF; EnvironmentFailure (exit 3) when Chromium is missing or fails. The
    default time limit grows with the page (2 min + 40 s per MB: on a loaded 2-core host)."""
    if timeout_s is None:
        timeout_s = TIMEOUT_S + TIMEOUT_PER_MB_S * len(html) / 1e6
    exe = find_chromium()
    if exe is None:
        raise EnvironmentFailure("--format pdf needs Chromium (apt-get install chromium): not found")
    with tempfile.TemporaryDirectory(prefix="drbdbackup-pdf-") as tmp:
        src, out = os.path.join(tmp, "report.html"), os.path.join(tmp, "report.pdf")
        with open(src, "wb") as f:
            f.write(html)
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
               f"--user-data-dir={os.path.join(tmp, 'profile')}", f"--print-to-pdf={out}",
               "file://" + src]
        stderr, code = _run(cmd, timeout_s, {**os.environ, "HOME": tmp})
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
            raise EnvironmentFailure(f"Chromium printed no PDF: {tail[0][:200]}")
        with open(out, "rb") as f:
            return f.read()
