"""Serving picks up a new champion within max_age without a restart, refuses a corrupted one, and never
fails a request while it swaps (model_store + the registry's champion pointer, on moto)."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path

import pytest

from categorizer.engine import Prediction, load_bundle
from categorizer.model_store import ChampionPointer, ModelStore
from tests.learning.support import BUCKET, PARAMETER, Stage, reversioned

V2 = "20261201-000000-bbbbbbbb"


@pytest.fixture
def second_version(stage: Stage, champion: str, tiny_bundle: Path, tmp_path: Path) -> str:
    bundle_dir, tarball = reversioned(tiny_bundle, tmp_path / V2, V2)
    stage.registry().register(tarball, load_bundle(bundle_dir), source={"kind": "training_job"})
    return V2


def wait_for_version(store: ModelStore, version: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if store.get().version == version:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"still serving {store.get().version} after {timeout}s, expected {version}")


def test_a_promoted_champion_serves_within_max_age_without_a_restart(stage: Stage, champion: str,
                                                                     second_version: str):
    store = ModelStore(stage.serving())  # MODEL_MAX_AGE_SECONDS=1
    first = store.get()
    assert first.version == champion
    stage.registry().force_promote(second_version, actor="test", reason="swap")
    waited = wait_for_version(store, second_version, timeout=stage.serving().model_max_age_seconds + 2)
    assert waited <= stage.serving().model_max_age_seconds + 1
    assert store.get().classify(["my card has not arrived"])[0].label == "card_arrival"
    assert first.classify(["my card has not arrived"])[0].label == "card_arrival"  # the old one still answers


def test_a_corrupted_champion_never_replaces_the_working_model(stage: Stage, champion: str, tiny_bundle: Path,
                                                               tmp_path: Path, log_output):
    store = ModelStore(stage.serving())
    assert store.get().version == champion
    _, tarball = reversioned(tiny_bundle, tmp_path / "bad", "20261202-000000-0badf00d")
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tarball) as source, tarfile.open(tampered, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            target.addfile(member, io.BytesIO(data[:-8] + b"tampered" if member.name == "model.onnx" else data))
    key = "models/20261202-000000-0badf00d/model.tar.gz"
    stage.s3.upload_file(str(tampered), BUCKET, key)
    # Someone (or something) points the champion at it, bypassing the promote function's checks.
    stage.ssm.put_parameter(Name=PARAMETER, Value=ChampionPointer("20261202-000000-0badf00d", key).to_json(),
                            Type="String", Overwrite=True)
    time.sleep(stage.serving().model_max_age_seconds + 0.2)
    for _ in range(3):
        classifier = store.get()
        assert classifier.version == champion
        assert isinstance(classifier.classify(["what is the exchange rate"])[0], Prediction)
    assert any(line.get("message") == "candidate model refused" for line in log_output())


def test_no_request_fails_while_the_champion_swaps(stage: Stage, champion: str, second_version: str):
    store = ModelStore(stage.serving())
    store.get()
    registry = stage.registry()
    stop = threading.Event()
    errors: list[BaseException] = []
    served: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            try:
                classifier = store.get()
                result = classifier.classify(["I lost my card", "euro to dollar rate?"])
                assert all(isinstance(r, Prediction) for r in result)
                with lock:
                    served.append(classifier.version)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for version in (second_version, champion, second_version):
            registry.force_promote(version, actor="test", reason="swap under load")
            wait_for_version(store, version, timeout=stage.serving().model_max_age_seconds + 3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert {champion, second_version} <= set(served)
    assert len(served) > 20
