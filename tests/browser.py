"""A headless chromium for the tests that open report.html and the preview as a user would.

The README's test command (and so CI) installs chromium; without one these tests skip, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER_TIMEOUT_S = 90


def chromium() -> str:
    """The browser's path, or a skip that says how to install one."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless chromium (apt-get install -y chromium; .ci/run installs it)")


def browser(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open `page` in headless chromium with `args` (--dump-dom, --screenshot=...)."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    try:
        done = subprocess.run(
            [*command, *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chromium cannot run here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"chromium cannot run here: {done.stderr.strip()[-300:]}")
    return done
