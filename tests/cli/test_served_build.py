"""`make up`'s background build (categorizer_cli.local.served_build) without a stack: a build that fails is
said in the status file with its log, the quick model's place is never touched; a served folder whose bundle is
the champion already, or was judged before, is left alone. Real build processes, real bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from categorizer.registry.records import Action, Decision
from categorizer_cli.local.served_build import STATUS_FILE, BuildState, BuildStatus, ServedBuild, build_command


def served_folder(tmp_path: Path, bundle: Path) -> tuple[Path, str]:
    """artifacts/served as `categorizer model build` leaves it: models/<version>/ + .tar.gz, model -> it."""
    from model_build.bundle import make_tarball

    version = json.loads((bundle / "manifest.json").read_text())["version"]
    models = tmp_path / "served" / "models"
    shutil.copytree(bundle, models / version)
    make_tarball(models / version, models / f"{version}.tar.gz")
    (tmp_path / "served" / "model").symlink_to(f"models/{version}")
    return tmp_path / "served", version


def test_a_failed_build_is_reported_with_its_log_and_nothing_is_submitted(tmp_path: Path):
    submitted: list[Path] = []
    missing = tmp_path / "no-such-training-file.csv"
    build = ServedBuild(served_dir=tmp_path / "served", recipe="fast", directory=tmp_path / "local",
                        submit=lambda bundle, tarball, source: submitted.append(bundle),
                        command=[*build_command("fast"), "--data", str(missing)], log=lambda line: None)

    started = build.start(champion="20261101-000000-0c0c0c0c", earlier_decision=lambda version: None)
    assert started.state is BuildState.RUNNING and started.pid
    status = build.wait(timeout=120)

    assert status.state is BuildState.FAILED
    assert status.reasons[0] == "the build exited with code 2"
    assert any("no such file" in line and str(missing) in line for line in status.reasons[1:])
    assert status.log == str(tmp_path / "local" / "served-build.log")
    assert "no such file" in Path(status.log).read_text()
    assert BuildStatus.read(tmp_path / "local" / STATUS_FILE) == status  # what `categorizer status` reads
    line = status.describe()
    assert line.startswith("failed after") and "the quick model keeps serving" in line and status.log in line
    assert submitted == []
    assert not (tmp_path / "served" / "model").exists()


def test_a_served_bundle_that_is_the_champion_already_is_left_alone(tmp_path: Path, tiny_bundle: Path):
    served, version = served_folder(tmp_path, tiny_bundle)
    build = ServedBuild(served_dir=served, recipe="auto", directory=tmp_path / "local",
                        submit=lambda *args: (_ for _ in ()).throw(AssertionError("submitted")), log=lambda line: None)

    status = build.start(champion=version, earlier_decision=lambda v: None)

    assert status.state is BuildState.SERVING and not status.built and build.process is None
    assert status.describe() == f"done: {version} ({served.resolve()}) is the champion"


def test_a_served_bundle_judged_before_is_not_judged_again(tmp_path: Path, tiny_bundle: Path):
    served, version = served_folder(tmp_path, tiny_bundle)
    earlier = Decision(action=Action.REJECTED, version=version, previous_champion="20261101-000000-0c0c0c0c",
                       actor="local:make up (background build)",
                       reasons=("rebuild: hold-out macro-F1 did not improve: 0.9300 vs champion 0.9323",))
    build = ServedBuild(served_dir=served, recipe="auto", directory=tmp_path / "local",
                        submit=lambda *args: (_ for _ in ()).throw(AssertionError("submitted")), log=lambda line: None)

    status = build.start(champion="20261101-000000-0c0c0c0c",
                         earlier_decision=lambda v: earlier if v == version else None)

    assert status.state is BuildState.REJECTED and build.process is None and build.thread is None
    assert status.reasons == earlier.reasons and status.decided_at == earlier.at
    assert status.champion == "20261101-000000-0c0c0c0c"
    assert "rejected by the gate" in status.describe() and "the champion keeps serving" in status.describe()


def test_a_build_stopped_with_the_stack_leaves_no_staging_folder_behind(tmp_path: Path):
    """Only the stopped build's half-written folder goes; one another build writes now (make served-model) stays."""
    import os
    import sys
    import time

    local, models = tmp_path / "local", tmp_path / "served" / "models"
    local.mkdir()
    now = time.time()
    BuildStatus(state=BuildState.STOPPED, recipe="auto", served_dir=str(tmp_path / "served"), log="x",
                started_at=now - 600, ended_at=now - 300).write(local / STATUS_FILE)
    stale, busy = models / ".staging-stopped", models / ".staging-running"
    for folder, written in ((stale, now - 400), (busy, now)):
        folder.mkdir(parents=True)
        os.utime(folder, (written, written))
    build = ServedBuild(served_dir=tmp_path / "served", recipe="auto", directory=local, log=lambda line: None,
                        submit=lambda *args: None, command=[sys.executable, "-c", "raise SystemExit(3)"])

    build.start(champion="v", earlier_decision=lambda v: None)
    status = build.wait(timeout=60)

    assert not stale.exists() and busy.is_dir()
    assert status.state is BuildState.FAILED and status.reasons[0] == "the build exited with code 3"
