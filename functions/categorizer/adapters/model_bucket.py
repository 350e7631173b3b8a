"""S3 access for model bundles."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import boto3


@lru_cache(maxsize=1)
def _s3():
    return boto3.client("s3")


def download_file(bucket: str, key: str, destination: Path) -> None:
    _s3().download_file(bucket, key, str(destination))


def upload_file(source: Path, bucket: str, key: str) -> None:
    _s3().upload_file(str(source), bucket, key)
