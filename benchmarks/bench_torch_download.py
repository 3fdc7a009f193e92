"""What `pip install torch==VERSION` downloads from each index, without downloading the wheels.

    python benchmarks/bench_torch_download.py [--version 2.13.0] [--cpu-wheel PATH]

For PyPI (the CUDA build on Linux) and PyTorch's CPU index, pip resolves torch and its
dependencies for this interpreter and platform (`pip install --dry-run --report`, `--isolated`,
`--ignore-installed`, that index alone), and each chosen file's size is asked of the index's file
host (an HTTP HEAD request). An index this machine cannot reach is reported as such; then
`--cpu-wheel` (a local copy of the CPU build's wheel) gives the CPU install's size as that wheel
plus the dependencies PyPI resolved that are not CUDA's (nvidia-*, cuda-*, triton).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

INDEXES = {
    "PyPI (CUDA build)": "https://pypi.org/simple",
    "PyTorch CPU index": "https://download.pytorch.org/whl/cpu",
}
HEAD_TIMEOUT_S = 30
CUDA_ONLY = ("torch", "triton", "nvidia-", "cuda-")
"""Names (prefixes) of what only the CUDA build brings, torch's own wheel included."""


def resolve(version: str, index: str) -> list[dict] | str:
    """The files pip would install for torch==version from `index`, or why it could not say."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--quiet",
             "--ignore-installed", "--retries", "1", "--timeout", "20", "--index-url", index,
             "--report", str(report), f"torch=={version}"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0 or not report.is_file():
            lines = [x for x in done.stderr.splitlines() if x.strip() and "[notice]" not in x]
            last = (lines or ["no output"])[-1]
            return f"not resolved from here: {last[:160]}"
        return json.loads(report.read_text())["install"]


def size(url: str) -> int:
    """Bytes of one file, from the Content-Length of a HEAD request."""
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=HEAD_TIMEOUT_S) as answer:
        return int(answer.headers["Content-Length"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="2.13.0")
    parser.add_argument("--cpu-wheel", type=Path, help="a local torch+cpu wheel of that version")
    args = parser.parse_args()
    shared: dict[str, int] = {}
    print(f"torch=={args.version} for Python {sys.version_info.major}.{sys.version_info.minor}")
    for label, index in INDEXES.items():
        files = resolve(args.version, index)
        if isinstance(files, str):
            print(f"{label}: {files}")
            continue
        sizes = {item["metadata"]["name"]: size(item["download_info"]["url"]) for item in files}
        total = sum(sizes.values())
        largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:4]
        shown = ", ".join(f"{name} {bytes_ / 1e6:.0f} MB" for name, bytes_ in largest)
        print(f"{label}: {len(sizes)} files, {total / 1e6:.0f} MB (largest: {shown})")
        if not shared:
            shared = {n: b for n, b in sizes.items() if not n.startswith(CUDA_ONLY)}
    if args.cpu_wheel and shared:
        wheel = args.cpu_wheel.stat().st_size
        rest = sum(shared.values())
        print(
            f"CPU build ({args.cpu_wheel.name} {wheel / 1e6:.0f} MB + {len(shared)} other files "
            f"{rest / 1e6:.0f} MB): {(wheel + rest) / 1e6:.0f} MB"
        )


if __name__ == "__main__":
    main()
