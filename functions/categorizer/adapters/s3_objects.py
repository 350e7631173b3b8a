"""S3 access for the batch function: streaming reads, atomic multipart writes, heads and small objects.

A multipart upload is invisible until CompleteMultipartUpload, so a writer that dies half way leaves
no partial object behind (the bucket's lifecycle rule aborts the orphaned upload).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import boto3
from botocore.exceptions import ClientError

PART_BYTES = 8 * 1024 * 1024  # S3's minimum part size is 5 MiB (except the last part)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
_CHANGED = {"412", "PreconditionFailed"}


class ObjectChangedError(Exception):
    """The object is gone or no longer the version asked for (it was overwritten or deleted)."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str  # without quotes, as S3 event notifications carry it
    version_id: str | None
    metadata: dict[str, str]  # user metadata, keys lower-case without "x-amz-meta-"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class _BodyReader(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so it can sit under BufferedReader/TextIOWrapper."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class MultipartWriter(io.RawIOBase):
    """A write-only stream into one S3 object, published only by `complete()`.

    Small outputs (under one part) go up with a single PutObject at `complete()`; larger ones use a
    multipart upload created with the first full part. `abort()` discards everything.
    """

    def __init__(self, client: Any, bucket: str, key: str, *, content_type: str, part_bytes: int = PART_BYTES):
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._finished = False
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        if self._finished:
            return len(data)  # a late flush after abort() or complete() has nowhere to go
        self._buffer += data
        self.bytes_written += len(data)
        while len(self._buffer) >= self._part_bytes:
            self._upload_part(bytes(self._buffer[: self._part_bytes]))
            del self._buffer[: self._part_bytes]
        return len(data)

    def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key,
                                                           ContentType=self._content_type)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        part = self._client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                        PartNumber=number, Body=body)
        self._parts.append({"PartNumber": number, "ETag": part["ETag"]})

    def complete(self) -> None:
        """Publish the object (atomically: readers see the whole object or none)."""
        if self._finished:
            raise ValueError(f"s3://{self._bucket}/{self._key}: already completed or aborted")
        if self._upload_id is None:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer),
                                    ContentType=self._content_type)
        else:
            if self._buffer:
                self._upload_part(bytes(self._buffer))
            self._client.complete_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                                   MultipartUpload={"Parts": self._parts})
        self._buffer = bytearray()
        self._upload_id = None
        self._finished = True

    def abort(self) -> None:
        """Discard what was written. Safe to call more than once, and after a failed complete()."""
        if self._finished and self._upload_id is None:
            return  # already completed or aborted
        self._finished = True
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            # If this fails too, the lifecycle rule (AbortIncompleteMultipartUpload) cleans up.
            with contextlib.suppress(ClientError):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)


@contextlib.contextmanager
def aborted_on_error(*writers: MultipartWriter) -> Iterator[None]:
    """Abort every writer if the block raises: a failed job publishes nothing half-written (retries start clean).
    Completing them is the block's own business."""
    try:
        yield
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


class S3Objects:
    def __init__(self, client: Any | None = None) -> None:
        self.client = client or boto3.client("s3")

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                return None
            raise
        return ObjectInfo(size=int(response["ContentLength"]), etag=response["ETag"].strip('"'),
                          version_id=response.get("VersionId"), metadata=dict(response.get("Metadata", {})))

    def exists(self, bucket: str, key: str) -> bool:
        return self.head(bucket, key) is not None

    def open_read(self, bucket: str, key: str, *, etag: str | None = None,
                  version_id: str | None = None) -> BinaryIO:
        """Stream the object; with `etag`/`version_id`, exactly that content or ObjectChangedError."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            params["IfMatch"] = f'"{etag}"'
        if version_id:
            params["VersionId"] = version_id
        try:
            response = self.client.get_object(**params)
        except ClientError as error:
            if _code(error) in _NOT_FOUND | _CHANGED:
                raise ObjectChangedError(f"s3://{bucket}/{key}: {_code(error)}") from error
            raise
        return io.BufferedReader(_BodyReader(response["Body"]), 64 * 1024)  # type: ignore[return-value]

    def read_small(self, bucket: str, key: str, *, max_bytes: int = 64 * 1024) -> bytes | None:
        """A small object's bytes (config, manifest), None if it does not exist."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                return None
            raise
        with response["Body"] as body:
            data = body.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"s3://{bucket}/{key} is over {max_bytes} bytes")
        return data

    def put(self, bucket: str, key: str, data: bytes, *, content_type: str) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        keys = self.list_keys(bucket, prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

    def writer(self, bucket: str, key: str, *, content_type: str, part_bytes: int = PART_BYTES) -> MultipartWriter:
        return MultipartWriter(self.client, bucket, key, content_type=content_type, part_bytes=part_bytes)

