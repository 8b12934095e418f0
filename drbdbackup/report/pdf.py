"""PDF from the HTML report with headless Chromium (`--print-to-pdf`), bounded in time."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from drbdbackup.errors import EnvironmentFailure

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 120.0


def find_chromium() -> str | None:
    explicit = os.environ.get("DRBDBACKUP_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)


def html_to_pdf(html: bytes, timeout_s: float = TIMEOUT_S) -> bytes:
    """Print `html` to PDF; EnvironmentFailure (exit 3) when Chromium is missing or fails."""
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
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                                  start_new_session=True, env={**os.environ, "HOME": tmp})
        except subprocess.TimeoutExpired:
            raise EnvironmentFailure(f"Chromium did not print the PDF within {timeout_s:.0f} s") from None
        except OSError as exc:
            raise EnvironmentFailure(f"cannot run Chromium ({exe}): {exc.strerror}") from None
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise EnvironmentFailure(f"Chromium printed no PDF: {tail[0][:200]}")
        with open(out, "rb") as f:
            return f.read()
