"""`categorizer classify --explain` prints the words behind each decision, one line per label."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

CLI = [sys.executable, "-m", "categorizer_cli.main"]


def test_classify_explain_prints_the_words_of_the_label_and_the_runner_up(default_bundle: Path):
    text = "What exchange rate do you use for euros?"
    result = subprocess.run([*CLI, "classify", "--model", str(default_bundle), "--explain", text],
                            capture_output=True, text=True, check=False, cwd=ROOT)

    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    label = lines[1].split("-> ", 1)[1].split(" ", 1)[0]
    why = [line.strip() for line in lines if line.strip().startswith("why ")]
    assert len(why) == 2 and why[0].startswith(f"why {label}: '")
    quoted = why[0].split(": ", 1)[1].split(", ")[0].rsplit(" ", 1)[0].strip("'")
    assert quoted in text
