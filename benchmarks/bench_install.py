"""Bytes downloaded, wheels fetched and wall time of `pip install .` in a clean virtual environment.

    python benchmarks/bench_install.py [--rev HEAD] [--index-url https://pypi.org/simple]

Exports the project at git revision `--rev` (or the working tree with `--rev WORKTREE`), makes a
fresh venv, installs torch there first as the README's quick start does (not measured: from this
machine's usual pip sources), then times `pip install .` run with `--isolated` against one index
and an empty cache, so that every byte pip needs comes over the network. Bytes are the sizes pip
prints for each file it downloads, summed; the same project fetched twice (backtracking) counts
twice, which is the point.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNITS = {"kB": 1e3, "MB": 1e6, "GB": 1e9}
COLLECTING = re.compile(r"^Collecting ([A-Za-z0-9_.\-]+)")
DOWNLOADING = re.compile(r"^\s*Downloading (\S+) \(([\d.]+) (kB|MB|GB)\)")


def export(rev: str, dest: Path) -> Path:
    """The project's files at `rev` (a git revision or WORKTREE) in `dest`."""
    if rev == "WORKTREE":
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        subprocess.run(
            ["tar", "-cf", str(dest / "src.tar"), *files], cwd=REPO, check=True, capture_output=True
        )
    else:
        subprocess.run(["git", "archive", "-o", str(dest / "src.tar"), rev], cwd=REPO, check=True)
    source = dest / "src"
    source.mkdir()
    subprocess.run(["tar", "-xf", str(dest / "src.tar"), "-C", str(source)], check=True)
    return source


def parse_log(log: str) -> tuple[float, collections.Counter[str]]:
    """Total bytes downloaded and files downloaded per project, from pip's output."""
    total = 0.0
    per_project: collections.Counter[str] = collections.Counter()
    project = "?"
    for line in log.splitlines():
        if match := COLLECTING.match(line):
            project = match.group(1).lower().replace("_", "-")
        elif match := DOWNLOADING.match(line):
            total += float(match.group(2)) * UNITS[match.group(3)]
            per_project[project] += 1
    return total, per_project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="git revision to install, or WORKTREE")
    parser.add_argument("--index-url", default="https://pypi.org/simple")
    parser.add_argument("--torch", default="torch==2.13.0", help="preinstalled first, unmeasured")
    parser.add_argument("--log", type=Path, help="keep pip's output here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source = export(args.rev, root)
        venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "-q", args.torch], check=True)
        version = subprocess.run(
            [*pip, "--version"], check=True, capture_output=True, text=True
        ).stdout.split()[1]
        command = [
            *pip,
            "install",
            "--isolated",
            "--index-url",
            args.index_url,
            "--cache-dir",
            str(root / "cache"),
            "--progress-bar",
            "off",
            str(source),
        ]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        log = done.stdout + done.stderr
        if args.log:
            args.log.write_text(log)
        if done.returncode != 0:
            sys.exit(f"pip install failed:\n{log[-3000:]}")
        total, per_project = parse_log(log)
        site = next((venv / "lib").glob("python*/site-packages"))
        installed = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        repeated = {p: n for p, n in per_project.most_common() if n > 1}
        print(f"rev {args.rev}, pip {version}, index {args.index_url}, {args.torch} preinstalled")
        print(
            f"pip install .: {wall:.1f} s wall, {total / 1e6:.0f} MB downloaded in "
            f"{sum(per_project.values())} files, venv with torch {installed / 1e6:.0f} MB"
        )
        print(f"projects fetched more than once (backtracking): {repeated or 'none'}")


if __name__ == "__main__":
    main()
