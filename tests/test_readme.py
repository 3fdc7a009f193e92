"""The README's commands agree with what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _block_after(text: str, marker: str) -> str:
    """The first ```bash block after `marker`."""
    start = text.index(marker)
    return re.search(r"```bash\n(.*?)\n```", text[start:], re.S).group(1).strip()


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    command = _block_after(readme, "Install and run the tests")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert command in ci, "the README's test command must be a line of .ci/run, word for word"
    assert "chromium" in command, "the browser tests run in both"
    quick = _block_after(readme, "## Quick start")
    torch_install = re.search(r"pip install torch==\S+ --extra-index-url \S+", quick).group(0)
    assert torch_install.replace("pip install", "pip install -q") in command
