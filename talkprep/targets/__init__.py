"""One reading contract per trainer; `talkprep process/export/check --target NAME` use them.

Adding a trainer is adding a module with a `TARGET` here, never a change to the tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from talkprep.errors import UsageError
from talkprep.targets import (
    adnerf,
    ernerf,
    gaussiantalker,
    instag,
    radnerf,
    synctalk,
    talkinggaussian,
)
from talkprep.targets.base import Target

if TYPE_CHECKING:
    from talkprep.targets.check import TargetReport

DEFAULT_TARGET = "ernerf"
TARGETS: dict[str, Target] = {
    m.TARGET.name: m.TARGET
    for m in (ernerf, radnerf, adnerf, synctalk, talkinggaussian, gaussiantalker, instag)
}
"""Every target by its command-line name."""


def get_target(name: str) -> Target:
    """The target called `name`, or a UsageError listing the choices."""
    try:
        return TARGETS[name.lower()]
    except KeyError:
        raise UsageError(
            f"--target must be one of {', '.join(TARGETS)}; got {name!r} "
            "(GeneFace++ is not supported: it needs BFM 3DMM coefficients)"
        ) from None


def format_report(report: TargetReport) -> str:
    """Plain text of a TargetReport: one row per file group, then notes and trainer flags."""
    rows = [("file group", "status", "problem / fix")]
    for f in report.findings:
        text = "" if f.ok else f"{f.problem}" + (f"  -> {f.fix}" if f.fix else "")
        rows.append((f.group, "ok" if f.ok else "FAIL", text))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}".rstrip() for r in rows]
    lines += [f"note: {n}" for n in report.notes]
    flags = " ".join(report.flags)
    lines.append(f"{report.target.trainer} flags: {flags}" if flags else "")
    if report.train:
        lines.append(f"train it (from {report.target.trainer}'s checkout): {report.train}")
    return "\n".join(lines).rstrip()
