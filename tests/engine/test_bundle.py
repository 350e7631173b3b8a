"""Bundle verification: a tampered, truncated or incomplete bundle never loads."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from categorizer.engine import BundleError, load_bundle
from categorizer.engine.bundle import extract_bundle
from model_build.bundle import make_tarball


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_valid_bundle_loads_with_manifest_fields(tiny_bundle: Path):
    bundle = load_bundle(tiny_bundle)
    assert set(bundle.labels) == {"card_arrival", "exchange_rate", "lost_or_stolen_card"}
    manifest = bundle.manifest
    for key in ("version", "created", "base_encoder", "training_data_sha256", "metrics", "review_threshold"):
        assert key in manifest
    assert {"model.onnx", "tokenizer.json", "labels.json", "report/metrics.json"} <= set(manifest["files"])


def test_tampered_model_is_refused(bundle_copy: Path):
    with (bundle_copy / "model.onnx").open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match=r"model\.onnx sha256"):
        load_bundle(bundle_copy)


def test_truncated_model_is_refused(bundle_copy: Path):
    path = bundle_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleError, match="does not match"):
        load_bundle(bundle_copy)


def test_missing_file_is_refused(bundle_copy: Path):
    (bundle_copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"tokenizer\.json is missing"):
        load_bundle(bundle_copy)


def test_manifest_naming_a_file_outside_the_bundle_is_refused(bundle_copy: Path):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"]["../escape"] = "0" * 64
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(bundle_copy)


def test_garbage_manifest_is_refused(bundle_copy: Path):
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)


def test_tarball_round_trip(tiny_bundle: Path, tmp_path: Path):
    tarball = make_tarball(tiny_bundle, tmp_path / "model.tar.gz")
    with tarfile.open(tarball) as archive:
        assert "manifest.json" in archive.getnames()  # files at the root, as SageMaker writes them
    unpacked = extract_bundle(tarball, tmp_path / "out")
    assert load_bundle(unpacked).version == load_bundle(tiny_bundle).version


def test_truncated_tarball_is_refused(tiny_bundle: Path, tmp_path: Path):
    tarball = make_tarball(tiny_bundle, tmp_path / "model.tar.gz")
    tarball.write_bytes(tarball.read_bytes()[:5000])
    with pytest.raises(BundleError):
        load_bundle(extract_bundle(tarball, tmp_path / "out"))
