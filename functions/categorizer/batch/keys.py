"""Where a file's outputs go: under the results prefix, mirroring the key below the ingest prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

from categorizer.contract.names import WORK_FOLDER  # <results prefix>_work/: the fan-out's temporaries
from categorizer.files.errors import FileFailure
from categorizer.files.formats import FileFormat, FileSpec, detect_format

CONFIG_OBJECT_NAME = "_categorizer.json"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeKeyError(ValueError):
    """The key cannot be mapped to an output key safely (outside the ingest prefix, `..`, control chars)."""


@dataclass(frozen=True)
class OutputKeys:
    bucket: str
    results: str
    errors: str
    manifest: str
    workbook: str | None = None  # a workbook input's results as a workbook (beside the CSV results)


def file_spec_or_failure(key: str) -> tuple[FileSpec, FileFailure | None]:
    """The key's format; for an unknown one, a JSON Lines report spec named after the whole file name."""
    try:
        return detect_format(key), None
    except FileFailure as failure:
        name = key.rsplit("/", 1)[-1]
        return FileSpec(format=FileFormat.JSONL, gzip=False, stem=name, extension="jsonl"), failure


def relative_key(key: str, ingest_prefix: str) -> str:
    """The part of `key` below the ingest prefix; refuses anything that could escape the results prefix."""
    if not key.startswith(ingest_prefix):
        raise UnsafeKeyError(f"{key!r} is not under the ingest prefix {ingest_prefix!r}")
    relative = key[len(ingest_prefix):]
    if not relative or relative.startswith("/") or relative.endswith("/"):
        raise UnsafeKeyError(f"{key!r} does not name a file below the ingest prefix")
    if _CONTROL_CHARS.search(relative):
        raise UnsafeKeyError(f"{key!r} contains control characters")
    if relative.startswith(WORK_FOLDER):
        raise UnsafeKeyError(f"{key!r}: the folder {WORK_FOLDER!r} is reserved for temporary batch objects")
    segments = re.split(r"[/\\]", relative)
    if any(segment in ("", ".", "..") for segment in segments):
        raise UnsafeKeyError(f"{key!r} has an empty, '.' or '..' path segment")
    return relative


def plan_output_keys(*, bucket: str, key: str, spec: FileSpec, ingest_prefix: str, results_prefix: str,
                     results_bucket: str | None) -> OutputKeys:
    """results/<dir>/<name>.<ext>, <name>.errors.<ext>, <name>.manifest.json for ingest/<dir>/<name>.<ext>."""
    relative = relative_key(key, ingest_prefix)
    directory = relative.rsplit("/", 1)[0] + "/" if "/" in relative else ""
    target_bucket = results_bucket or bucket
    base = f"{results_prefix}{directory}"
    workbook = spec.workbook_name()
    keys = OutputKeys(bucket=target_bucket, results=base + spec.results_name(), errors=base + spec.errors_name(),
                      manifest=base + spec.manifest_name(), workbook=base + workbook if workbook else None)
    if target_bucket == bucket and ingest_prefix and any(
            k.startswith(ingest_prefix) for k in (keys.results, keys.errors, keys.manifest, keys.workbook) if k):
        # Writing under the ingest prefix would trigger this function again, forever.
        raise UnsafeKeyError(f"results prefix {results_prefix!r} lies under the ingest prefix {ingest_prefix!r}")
    if target_bucket == bucket and not ingest_prefix:
        raise UnsafeKeyError("results share the ingest bucket but the ingest prefix is empty (recursion)")
    return keys
