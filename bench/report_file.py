"""Where a bench script writes its results: bench/results/<date>-<HHMM>-<kind>.md, printed as well.

A second run in the same minute gets the seconds in its name instead of overwriting the first's file (two
results files were lost that way on 2026-11-29, before this existed).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def results_path(kind: str, when: datetime, suffix: str = ".md") -> Path:
    """A free path for this run's results of `kind` (e.g. "graph-parts")."""
    path = RESULTS / f"{when:%Y-%m-%d-%H%M}-{kind}{suffix}"
    return path.with_name(f"{when:%Y-%m-%d-%H%M%S}-{kind}{suffix}") if path.exists() else path


def write_report(kind: str, report: str, when: datetime) -> Path:
    """Write and print the report; returns its path (a JSON beside it takes `path.with_suffix(".json")`)."""
    path = results_path(kind, when)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report, encoding="utf-8")
    print(report)
    print(f"written: {path}")
    return path
