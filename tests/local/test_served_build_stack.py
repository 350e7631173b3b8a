"""`make up`'s shape on the local stack: the quick model answers at once, the served folder builds in the
background, and the built bundle goes through the registry and the gate like a retrained model.

`categorizer up --served DIR --served-recipe fast` as `make up` runs it (the Makefile passes artifacts/served and
the `auto` recipe), on a small BANKING77 sample (8 training and 4 hold-out texts per label), so the build takes
seconds: a model trained on 616 texts is worse than the quick one, and the gate says so. Then a restart judges
nothing again, and `categorizer down` stops a build that is still running.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.network import free_port
from tests.support.paths import BANKING77, ROOT

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "categorizer_cli.main"]


def sample(source: Path, target: Path, per_label: int) -> Path:
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    seen: Counter[str] = Counter()
    kept = []
    for row in rows:
        seen[row["category"]] += 1
        if seen[row["category"]] <= per_label:
            kept.append(row)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return target


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("banking77-sample")
    sample(BANKING77 / "train.csv", folder / "train.csv", 8)
    sample(BANKING77 / "test.csv", folder / "test.csv", 4)
    return folder


class Stack:
    def __init__(self, directory: Path, data: Path) -> None:
        self.directory = directory
        self.env = {**os.environ, "CATEGORIZER_LOCAL_DIR": str(directory), "CATEGORIZER_DATA": str(data),
                    "CATEGORIZER_MOTO_PORT": str(free_port()), "CATEGORIZER_API_PORT": str(free_port()),
                    "CATEGORIZER_TOKEN_PORT": str(free_port())}
        self.env.pop("CATEGORIZER_ARTIFACTS", None)  # the quick model: artifacts/model

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*CLI, *args], capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=600,
                                check=False)
        if check and result.returncode != 0:
            log = (self.directory / "stack.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"categorizer {' '.join(args)} exited {result.returncode}\n{result.stdout[-2000:]}"
                                 f"\n{result.stderr[-2000:]}\nstack log:\n{log}")
        return result

    def build_status(self) -> dict:
        path = self.directory / "served-build.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def wait_for_state(self, states: set[str], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.build_status()
            if status.get("state") in states:
                return status
            time.sleep(1)
        raise AssertionError(f"no {states} after {timeout}s: {self.build_status()}\n"
                             f"{(self.directory / 'served-build.log').read_text(errors='replace')[-2000:]}")


def test_the_quick_model_serves_at_once_and_the_built_one_is_judged_by_the_gate(
        tmp_path: Path, small_data: Path, default_bundle: Path):
    quick = json.loads((default_bundle / "manifest.json").read_text())["version"]
    served = tmp_path / "served"
    stack = Stack(tmp_path / "local", small_data)
    try:
        up = stack.cli("up", "--served", str(served), "--served-recipe", "fast")
        assert "served model  running for" in up.stdout
        running = stack.build_status()
        assert running["state"] == "running" and running["pid"] and running["recipe"] == "fast"
        assert json.loads(stack.cli("classify", "--json", "my card has not arrived").stdout)["model_version"] == quick
        assert "served build       running for" in stack.cli("status").stdout

        done = stack.wait_for_state({"promoted", "rejected", "failed"}, timeout=900)

        assert done["state"] == "rejected", done
        assert done["reasons"][0].startswith("rebuild: hold-out macro-F1 did not improve")
        built = json.loads((served / "model" / "manifest.json").read_text())["version"]
        assert done["version"] == built and done["champion"] == quick
        listed = json.loads(stack.cli("model", "list", "--json").stdout)
        assert listed["champion"] == quick
        (decision,) = [d for d in listed["decisions"] if d["version"] == built]
        assert decision["action"] == "rejected" and decision["actor"] == "local:make up (background build)"
        assert {c["name"] for c in decision["checks"]} == {"labels", "holdout_macro_f1", "feedback_accuracy",
                                                           "class_f1"}
        (record,) = [m for m in listed["models"] if m["version"] == built]
        assert record["source"]["kind"] == "rebuild" and record["status"] == "rejected"
        status = stack.cli("status").stdout
        assert "served build       rejected by the gate" in status and "the champion keeps serving" in status
        assert json.loads(stack.cli("classify", "--json", "my card has not arrived").stdout)["model_version"] == quick

        # A restart finds the bundle judged: no build, no second decision.
        stack.cli("down")
        stack.cli("up", "--served", str(served), "--served-recipe", "fast")
        again = stack.build_status()
        assert again["state"] == "rejected" and again["built"] is False and again["pid"] is None
        listed = json.loads(stack.cli("model", "list", "--json").stdout)
        assert [d["action"] for d in listed["decisions"]] == ["published", "rejected"]
    finally:
        stack.cli("down", check=False)


def test_down_stops_a_running_build_and_says_so(tmp_path: Path, small_data: Path, default_bundle: Path):
    stack = Stack(tmp_path / "local", small_data)
    try:
        stack.cli("up", "--served", str(tmp_path / "served"), "--served-recipe", "fast")
        pid = stack.build_status()["pid"]
        assert Path(f"/proc/{pid}").exists()
    finally:
        stack.cli("down", check=False)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists()
    stopped = stack.build_status()
    assert stopped["state"] == "stopped" and stopped["pid"] is None
    assert not (tmp_path / "served" / "model").exists()  # nothing half-built is served
