"""S3 access for the model registry: bundles, registry manifests, decisions and training channels.

One object per bucket; every key is relative to that bucket. Missing objects read as None, never as errors,
so the registry logic decides what absence means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.exceptions import ClientError

MISSING = {"NoSuchKey", "404", "NotFound"}
# A conditional write lost its race (If-Match / If-None-Match); S3 says 409 when two such writes overlap.
PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class WriteConflictError(Exception):
    """A conditional write found the object changed (or created) since it was read."""


class ModelBucket:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self.client = client or boto3.client("s3")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def get_json(self, key: str) -> Any | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        return json.loads(body)

    def get_json_tagged(self, key: str) -> tuple[Any | None, str | None]:
        """The object and its ETag (None, None when missing): what `put_json_if` compares against."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None, None
            raise
        return json.loads(response["Body"].read()), response["ETag"]

    def put_json_if(self, key: str, value: Any, *, etag: str | None) -> str:
        """Write only if the object is still the one read (`etag`), or still absent (`etag=None`).

        S3 conditional writes (If-Match / If-None-Match): two writers racing cannot both win, so neither
        change is lost silently. Returns the new ETag; raises WriteConflictError when the race is lost.
        """
        body = json.dumps(value, indent=1, sort_keys=True).encode()
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                               ContentType="application/json", **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in PRECONDITION:
                raise WriteConflictError(key) from exc
            raise
        return response["ETag"]

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, indent=1, sort_keys=True).encode(), content_type="application/json")

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def upload_file(self, source: Path, key: str) -> None:
        self.client.upload_file(str(source), self.bucket, key)

    def open(self, key: str) -> BinaryIO:
        """A streaming body of the object (one GET): read it once, then close it."""
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]

    def download_file(self, key: str, destination: Path) -> Path:
        destination.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, key, str(destination))
        return destination


def split_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key
