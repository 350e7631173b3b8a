"""Write a model bundle: files, manifest with sha256 of each, and its model.tar.gz (SageMaker's format)."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from categorizer.engine.bundle import MANIFEST, sha256_file


def new_version(model_path: Path, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{sha256_file(model_path)[:8]}"


def write_manifest(bundle_dir: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Hash every file in the bundle (recursively, except the manifest) and write manifest.json."""
    files = {
        str(path.relative_to(bundle_dir)): sha256_file(path)
        for path in sorted(bundle_dir.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {**fields, "files": files}
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    return manifest


def make_tarball(bundle_dir: Path, tarball: Path) -> Path:
    """Files at the archive root, as SageMaker writes /opt/ml/model; fixed mtimes keep it reproducible."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted(bundle_dir.rglob("*")):
            if path.is_file():
                info = archive.gettarinfo(str(path), arcname=str(path.relative_to(bundle_dir)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
    return tarball
