"""A model bundle: a directory with model.onnx, tokenizer.json, labels.json and manifest.json.

The manifest lists the sha256 of every other file; loading refuses a bundle whose files do not match,
so a truncated download or a tampered file never serves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MANIFEST = "manifest.json"
STATIC_SCALES = "static"  # manifest `activation_scales` of a model whose int8 scales do not depend on the batch
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "labels.json")
_CHUNK = 1 << 20


class BundleError(Exception):
    """The bundle is missing, incomplete, or does not match its manifest."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    labels: tuple[str, ...]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def review_threshold(self) -> float:
        return float(self.manifest.get("review_threshold", 0.0))

    @property
    def out_of_scope_threshold(self) -> float | None:
        """The novelty threshold calibrated at build time; None for a bundle built without novelty."""
        threshold = self.manifest.get("novelty", {}).get("threshold")
        return None if threshold is None else float(threshold)

    @property
    def batchable(self) -> bool:
        """Built with constant activation scales: texts of one token length may share a forward pass."""
        return self.manifest.get("activation_scales") == STATIC_SCALES

    @property
    def max_tokens(self) -> int:
        return int(self.manifest.get("max_tokens", 128))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics", {}))

    def file(self, name: str) -> Path:
        return self.path / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_bundle(path: Path | str) -> Bundle:
    """Read and verify a bundle directory. Raises BundleError with the reason if anything is off."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from exc
    files: dict[str, str] = manifest.get("files", {})
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"{manifest_path}: manifest lists no sha256 for {name}")
    for name, expected in files.items():
        file_path = (path / name).resolve()
        if path.resolve() not in file_path.parents:
            raise BundleError(f"{manifest_path}: file {name!r} lies outside the bundle")
        if not file_path.is_file():
            raise BundleError(f"{path}: {name} is missing")
        actual = sha256_file(file_path)
        if actual != expected:
            raise BundleError(f"{path}: {name} sha256 {actual[:12]}… does not match the manifest {expected[:12]}…")
    labels = json.loads((path / "labels.json").read_text(encoding="utf-8"))
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise BundleError(f"{path}: labels.json must be a non-empty list of strings")
    return Bundle(path=path, manifest=manifest, labels=tuple(labels))


def extract_bundle(tarball: Path, destination: Path) -> Path:
    """Unpack a model.tar.gz safely (no absolute paths, links or `..`) and return the bundle directory."""
    with tarball.open("rb") as stream:
        return extract_bundle_stream(stream, destination, source=str(tarball))


def extract_bundle_stream(stream: BinaryIO, destination: Path, *, source: str) -> Path:
    """The same, from a readable stream (e.g. an S3 body): unpacking overlaps the download, and the tarball is
    never written to disk (a cold start's /tmp and time)."""
    import tarfile  # here, not at the top: loading a bundle from disk (the CLI, the engine's cold start) never unpacks

    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as archive:
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{source}: cannot unpack ({exc})") from exc
    if (destination / MANIFEST).is_file():
        return destination
    candidates = [p.parent for p in destination.glob(f"*/{MANIFEST}")]
    if len(candidates) != 1:
        raise BundleError(f"{source}: no single bundle inside")
    return candidates[0]
