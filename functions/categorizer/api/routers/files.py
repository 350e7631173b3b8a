"""The console's files routes: parse, call the file service, answer. Errors go through the one error table."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.convertors import StringConvertor, register_url_convertor

from categorizer.api.deps import ClassifyCaller, FileServiceDep
from categorizer.api.file_service import UPLOAD_ID_PATTERN, FileDetail, FileList, UploadForm, UploadRequest
from categorizer.api.schemas import ErrorResponse

router = APIRouter(tags=["files"])


class _UploadIdConvertor(StringConvertor):
    """Matches only upload ids, so `/files/uploads` is never taken for an id: GET there is 405, not 422."""

    regex = UPLOAD_ID_PATTERN.strip("^$")


register_url_convertor("upload_id", _UploadIdConvertor())

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "The token lacks the classify permission"},
}


@router.post("/files/uploads", summary="A presigned POST to upload one file into your own ingest prefix",
             status_code=201, responses={
                 **ERRORS,
                 400: {"model": ErrorResponse, "description": "The body is not valid JSON or UTF-8"},
                 413: {"model": ErrorResponse, "description": "The body is larger than the limit"},
                 422: {"model": ErrorResponse, "description": "Unsupported file name or format"}})
async def create_upload(body: UploadRequest, caller: ClassifyCaller, files: FileServiceDep) -> UploadForm:
    return files.create_upload(caller.subject, body.filename)


@router.get("/files", summary="Your recent files (newest first) and their manifest summaries", responses=ERRORS)
async def list_files(caller: ClassifyCaller, files: FileServiceDep) -> FileList:
    return FileList(files=files.recent(caller.subject))


@router.get("/files/{upload_id:upload_id}", summary="One file: status, manifest summary, short-lived download links",
            responses={**ERRORS, 404: {"model": ErrorResponse, "description": "No such upload of yours"}})
async def file_detail(upload_id: Annotated[str, Path(pattern=UPLOAD_ID_PATTERN)], caller: ClassifyCaller,
                      files: FileServiceDep) -> FileDetail:
    return files.detail(caller.subject, upload_id)
