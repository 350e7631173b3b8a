"""S3 access for the web console's files: presigned upload POSTs, presigned downloads, manifest reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: str  # ISO 8601


class UserFiles:
    def __init__(self, client: Any | None = None) -> None:
        self.client = client or boto3.client("s3")

    def presigned_upload(self, bucket: str, key: str, *, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A POST form for exactly `key`, 1..max_bytes bytes, valid `expires_in` seconds."""
        return self.client.generate_presigned_post(
            bucket, key, Conditions=[["content-length-range", 1, max_bytes]], ExpiresIn=expires_in)

    def presigned_download(self, bucket: str, key: str, *, filename: str, expires_in: int) -> str:
        # An attachment, so the browser saves it instead of rendering a CSV/JSON from another origin.
        quoted = filename.replace("\\", "_").replace('"', "_")
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=expires_in,
            Params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": f'attachment; filename="{quoted}"'})

    def list_objects(self, bucket: str, prefix: str, *, limit: int = 1000) -> list[StoredObject]:
        found: list[StoredObject] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found.append(StoredObject(key=item["Key"], size=int(item["Size"]),
                                          last_modified=item["LastModified"].isoformat()))
                if len(found) >= limit:
                    return found
        return found

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def read_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        with response["Body"] as body:
            data = body.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            return None
        try:
            parsed = json.loads(data)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None


@lru_cache(maxsize=1)
def get_user_files() -> UserFiles:
    """One client per container (created on first use, so tests can start moto first)."""
    return UserFiles()
