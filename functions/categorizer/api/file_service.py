"""The console's files: a presigned upload into the caller's own ingest prefix, their recent files, links.

Every key is built here from the token's `sub` and a server-made upload id, never taken from the client:
`ingest/<sub>/<upload id>/<file name>`; the batch function mirrors it to `results/<sub>/<upload id>/...`.
The routes (routers/files.py) only parse and answer; the console's ops page reads recent files here too.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from categorizer.adapters.user_files import UserFiles
from categorizer.batch.keys import OutputKeys, UnsafeKeyError, file_spec_or_failure, plan_output_keys
from categorizer.contract import ApiSettings as Settings
from categorizer.files.formats import GZIP_EXTENSIONS, SUPPORTED_EXTENSIONS

UPLOAD_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
_SAFE_SUBJECT = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_NAME_CHARS = 200
RECENT_LIMIT = 20

def _any_case(text: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in text)


# The names the batch function can process, stated in the document and enforced by it (the same regex in
# Python and in JSON Schema's ECMA dialect): no control character, not starting with whitespace or a dot,
# ending in a supported extension, optionally followed by .gz.
FILENAME_PATTERN = (r"^[^\s.\x00-\x1f\x7f\x85\ufeff][^\x00-\x1f\x7f]*\.(("
                    + "|".join(_any_case(extension) for extension in GZIP_EXTENSIONS)
                    + r")(\.[gG][zZ])?|"
                    + "|".join(_any_case(e) for e in SUPPORTED_EXTENSIONS if e not in GZIP_EXTENSIONS) + ")$")


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")
    filename: str = Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=FILENAME_PATTERN,
                          description="The file's name; its extension picks the format ("
                                      + ", ".join(f".{e}" for e in SUPPORTED_EXTENSIONS)
                                      + "; text formats optionally .gz)")


class UploadForm(BaseModel):
    upload_id: str
    key: str
    url: str = Field(description="POST a multipart form here: `fields` first, then `file`")
    fields: dict[str, str]
    max_bytes: int
    expires_in: int


class FileLinks(BaseModel):
    results: str | None = None
    errors: str | None = None
    manifest: str | None = None


class FileSummary(BaseModel):
    upload_id: str
    name: str
    size: int
    uploaded_at: str
    status: str = Field(description="`processing` until the manifest exists, then its status")
    rows_in: int | None = None
    rows_classified: int | None = None
    rows_rejected: int | None = None
    needs_review: int | None = None
    out_of_scope: int | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    failure_reason: str | None = None
    failure_message: str | None = None
    model_version: str | None = None
    duration_seconds: float | None = None


class FileDetail(FileSummary):
    links: FileLinks
    links_expire_in: int


class FileList(BaseModel):
    files: list[FileSummary]


class UnsupportedFileError(ValueError):
    """A file name the batch function could not process (422): unsupported format, unusable characters."""


class UploadNotFoundError(LookupError):
    """No upload with this id among the caller's files (404)."""


class FilesForbiddenError(PermissionError):
    """This identity cannot own files: its `sub` cannot be a key segment (403)."""


def user_prefix(settings: Settings, subject: str) -> str:
    if not _SAFE_SUBJECT.fullmatch(subject):
        raise FilesForbiddenError("this identity cannot own files")
    return f"{settings.ingest_prefix}{subject}/"


def clean_filename(name: str) -> str:
    """The name as given (FILENAME_PATTERN already held), minus what cannot sit in one key segment (slashes)."""
    return name.replace("/", "_").replace("\\", "_")


def output_keys(settings: Settings, bucket: str, key: str) -> OutputKeys:
    spec, _ = file_spec_or_failure(key)
    return plan_output_keys(bucket=bucket, key=key, spec=spec, ingest_prefix=settings.ingest_prefix,
                            results_prefix=settings.results_prefix, results_bucket=settings.results_bucket)


def _summary(settings: Settings, files: UserFiles, bucket: str, prefix: str, key: str, size: int,
             uploaded_at: str) -> tuple[FileSummary, OutputKeys, dict[str, Any] | None]:
    upload_id, name = key[len(prefix):].split("/", 1)
    outputs = output_keys(settings, bucket, key)
    manifest = files.read_json(outputs.bucket, outputs.manifest)
    summary = FileSummary(upload_id=upload_id, name=name, size=size, uploaded_at=uploaded_at, status="processing")
    if manifest is not None:
        counts = manifest.get("counts") or {}
        summary = summary.model_copy(update={
            "status": str(manifest.get("status", "unknown")),
            "rows_in": manifest.get("rows_in"), "rows_classified": manifest.get("rows_classified"),
            "rows_rejected": manifest.get("rows_rejected"), "needs_review": manifest.get("needs_review"),
            "out_of_scope": manifest.get("out_of_scope"),
            "counts": {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {},
            "failure_reason": manifest.get("failure_reason"), "failure_message": manifest.get("failure_message"),
            "model_version": manifest.get("model_version"), "duration_seconds": manifest.get("duration_seconds"),
        })
    return summary, outputs, manifest


@dataclass(frozen=True)
class FileService:
    settings: Settings
    files: UserFiles

    def create_upload(self, subject: str, filename: str) -> UploadForm:
        settings, bucket = self.settings, self.settings.ingest_bucket
        name = clean_filename(filename)
        _, failure = file_spec_or_failure(name)
        if failure is not None:
            raise UnsupportedFileError(f"{failure.message} (supported: .csv, .json, .jsonl, each optionally .gz)")
        upload_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        key = f"{user_prefix(settings, subject)}{upload_id}/{name}"
        try:
            output_keys(settings, bucket, key)
        except UnsafeKeyError as exc:
            raise UnsupportedFileError(str(exc)) from exc
        form = self.files.presigned_upload(bucket, key, max_bytes=settings.upload_max_bytes,
                                           expires_in=settings.link_expiry_seconds)
        return UploadForm(upload_id=upload_id, key=key, url=form["url"], fields=form["fields"],
                          max_bytes=settings.upload_max_bytes, expires_in=settings.link_expiry_seconds)

    def recent(self, subject: str) -> list[FileSummary]:
        settings, files, bucket = self.settings, self.files, self.settings.ingest_bucket
        prefix = user_prefix(settings, subject)
        objects = [o for o in files.list_objects(bucket, prefix) if o.key[len(prefix):].count("/") == 1]
        objects.sort(key=lambda o: o.key, reverse=True)  # upload ids start with the UTC time
        return [_summary(settings, files, bucket, prefix, o.key, o.size, o.last_modified)[0]
                for o in objects[:RECENT_LIMIT]]

    def detail(self, subject: str, upload_id: str) -> FileDetail:
        settings, files, bucket = self.settings, self.files, self.settings.ingest_bucket
        prefix = user_prefix(settings, subject)
        found = files.list_objects(bucket, f"{prefix}{upload_id}/", limit=1)
        if not found:
            raise UploadNotFoundError("no upload with this id in your files")
        stored = found[0]
        summary, outputs, manifest = _summary(settings, files, bucket, prefix, stored.key, stored.size,
                                              stored.last_modified)
        expiry = settings.link_expiry_seconds
        links = FileLinks()
        if manifest is not None:
            def link(key: str) -> str:
                return files.presigned_download(outputs.bucket, key, filename=key.rsplit("/", 1)[-1],
                                                expires_in=expiry)

            results_key = (manifest.get("outputs") or {}).get("results")
            links = FileLinks(
                results=link(outputs.results) if results_key else None,
                errors=link(outputs.errors) if files.exists(outputs.bucket, outputs.errors) else None,
                manifest=link(outputs.manifest),
            )
        return FileDetail(**summary.model_dump(), links=links, links_expire_in=expiry)
