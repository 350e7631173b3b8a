"""The console's files: a presigned upload into the caller's own ingest prefix, their recent files, links.

Every key is built here from the token's `sub` and a server-made upload id, never taken from the client:
`ingest/<sub>/<upload id>/<file name>`; the batch function mirrors it to `results/<sub>/<upload id>/...`.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from categorizer.adapters.user_files import UserFiles, get_user_files
from categorizer.api.deps import ClassifyCaller, SettingsDep
from categorizer.api.schemas import ErrorResponse
from categorizer.batch.keys import OutputKeys, UnsafeKeyError, file_spec_or_failure, plan_output_keys
from categorizer.settings import Settings

router = APIRouter(tags=["files"])

UPLOAD_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
_SAFE_SUBJECT = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_CHARS = 200
RECENT_LIMIT = 20

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "The token lacks the classify permission"},
    503: {"model": ErrorResponse, "description": "File uploads are not configured on this deployment"},
}


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    filename: str = Field(min_length=1, max_length=MAX_NAME_CHARS,
                          description="The file's name; its extension picks the format (.csv, .json, .jsonl, .xlsx, "
                                      "optionally .gz)")


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


async def user_files() -> UserFiles:
    return get_user_files()


UserFilesDep = Annotated[UserFiles, Depends(user_files)]


def _ingest_bucket(settings: Settings) -> str:
    if not settings.ingest_bucket:
        raise HTTPException(503, "file uploads are not configured on this deployment (INGEST_BUCKET)")
    return settings.ingest_bucket


def user_prefix(settings: Settings, subject: str) -> str:
    if not _SAFE_SUBJECT.fullmatch(subject):
        raise HTTPException(403, "this identity cannot own files")
    return f"{settings.ingest_prefix}{subject}/"


def clean_filename(name: str) -> str:
    """The name as given, minus what cannot sit in one key segment (slashes, control characters)."""
    if _CONTROL.search(name):
        raise HTTPException(422, "the file name contains control characters")
    cleaned = name.replace("/", "_").replace("\\", "_").strip()
    if not cleaned or cleaned.startswith("."):
        raise HTTPException(422, "the file name must not be empty or start with '.'")
    return cleaned


def output_keys(settings: Settings, bucket: str, key: str) -> OutputKeys:
    spec, _ = file_spec_or_failure(key)
    return plan_output_keys(bucket=bucket, key=key, spec=spec, ingest_prefix=settings.ingest_prefix,
                            results_prefix=settings.results_prefix, results_bucket=settings.results_bucket)


@router.post("/files/uploads", summary="A presigned POST to upload one file into your own ingest prefix",
             status_code=201, responses={**ERRORS, 422: {"model": ErrorResponse,
                                                         "description": "Unsupported file name or format"}})
async def create_upload(body: UploadRequest, caller: ClassifyCaller, settings: SettingsDep,
                        files: UserFilesDep) -> UploadForm:
    bucket = _ingest_bucket(settings)
    name = clean_filename(body.filename)
    _, failure = file_spec_or_failure(name)
    if failure is not None:
        raise HTTPException(422, f"{failure.message} (supported: .csv, .json, .jsonl, each optionally .gz, and .xlsx)")
    upload_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    key = f"{user_prefix(settings, caller.subject)}{upload_id}/{name}"
    try:
        output_keys(settings, bucket, key)
    except UnsafeKeyError as exc:
        raise HTTPException(422, str(exc)) from exc
    form = files.presigned_upload(bucket, key, max_bytes=settings.upload_max_bytes,
                                  expires_in=settings.link_expiry_seconds)
    return UploadForm(upload_id=upload_id, key=key, url=form["url"], fields=form["fields"],
                      max_bytes=settings.upload_max_bytes, expires_in=settings.link_expiry_seconds)


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
            "counts": {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {},
            "failure_reason": manifest.get("failure_reason"), "failure_message": manifest.get("failure_message"),
            "model_version": manifest.get("model_version"), "duration_seconds": manifest.get("duration_seconds"),
        })
    return summary, outputs, manifest


@router.get("/files", summary="Your recent files (newest first) and their manifest summaries", responses=ERRORS)
async def list_files(caller: ClassifyCaller, settings: SettingsDep, files: UserFilesDep) -> FileList:
    bucket = _ingest_bucket(settings)
    prefix = user_prefix(settings, caller.subject)
    objects = [o for o in files.list_objects(bucket, prefix) if o.key[len(prefix):].count("/") == 1]
    objects.sort(key=lambda o: o.key, reverse=True)  # upload ids start with the UTC time
    summaries = [_summary(settings, files, bucket, prefix, o.key, o.size, o.last_modified)[0]
                 for o in objects[:RECENT_LIMIT]]
    return FileList(files=summaries)


@router.get("/files/{upload_id}", summary="One file: status, manifest summary, short-lived download links",
            responses={**ERRORS, 404: {"model": ErrorResponse, "description": "No such upload of yours"}})
async def file_detail(upload_id: Annotated[str, Path(pattern=UPLOAD_ID_PATTERN)], caller: ClassifyCaller,
                      settings: SettingsDep, files: UserFilesDep) -> FileDetail:
    bucket = _ingest_bucket(settings)
    prefix = user_prefix(settings, caller.subject)
    found = files.list_objects(bucket, f"{prefix}{upload_id}/", limit=1)
    if not found:
        raise HTTPException(404, "no upload with this id in your files")
    stored = found[0]
    summary, outputs, manifest = _summary(settings, files, bucket, prefix, stored.key, stored.size,
                                          stored.last_modified)
    expiry = settings.link_expiry_seconds
    links = FileLinks()
    if manifest is not None:
        def link(key: str) -> str:
            return files.presigned_download(outputs.bucket, key, filename=key.rsplit("/", 1)[-1], expires_in=expiry)

        results_key = (manifest.get("outputs") or {}).get("results")
        links = FileLinks(
            results=link(outputs.results) if results_key else None,
            errors=link(outputs.errors) if files.exists(outputs.bucket, outputs.errors) else None,
            manifest=link(outputs.manifest),
        )
    return FileDetail(**summary.model_dump(), links=links, links_expire_in=expiry)
