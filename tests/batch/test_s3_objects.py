"""The S3 adapter on moto: atomic multipart writes, aborts, conditional reads."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from categorizer.adapters.s3_objects import ObjectChangedError, S3Objects, aborted_on_error

MIB = 1024 * 1024
BUCKET = "adapter-test"


@pytest.fixture
def objects():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield S3Objects(client)


def _uploads(objects: S3Objects) -> list:
    return objects.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def test_large_output_is_invisible_until_complete(objects):
    data = bytes(range(256)) * (11 * MIB // 256)
    writer = objects.writer(BUCKET, "out.csv", content_type="text/csv", part_bytes=5 * MIB)
    for start in range(0, len(data), 64 * 1024):
        writer.write(data[start : start + 64 * 1024])
    assert len(_uploads(objects)) == 1 and not objects.exists(BUCKET, "out.csv")  # two parts up, nothing visible
    writer.complete()
    assert objects.client.get_object(Bucket=BUCKET, Key="out.csv")["Body"].read() == data
    assert objects.head(BUCKET, "out.csv").etag.endswith("-3")  # 5 + 5 + 1 MiB
    assert _uploads(objects) == []


def test_abort_discards_everything(objects):
    writer = objects.writer(BUCKET, "out.csv", content_type="text/csv", part_bytes=5 * MIB)
    writer.write(b"x" * (6 * MIB))
    writer.abort()
    writer.write(b"late flush")  # ignored, not an error
    assert not objects.exists(BUCKET, "out.csv") and _uploads(objects) == []
    writer.abort()  # twice is fine


def test_a_writer_that_dies_leaves_no_object(objects):
    writer = objects.writer(BUCKET, "out.csv", content_type="text/csv", part_bytes=5 * MIB)
    writer.write(b"x" * (11 * MIB))
    del writer  # the process is killed: neither complete() nor abort() runs
    assert not objects.exists(BUCKET, "out.csv")
    assert len(_uploads(objects)) == 1  # left for the bucket's AbortIncompleteMultipartUpload rule



def test_an_error_in_the_block_aborts_every_writer_and_a_clean_exit_touches_none(objects):
    results = objects.writer(BUCKET, "results.csv", content_type="text/csv", part_bytes=5 * MIB)
    errors = objects.writer(BUCKET, "errors.csv", content_type="text/csv")

    def job() -> None:
        with aborted_on_error(results, errors):
            results.write(b"x" * (6 * MIB))  # a multipart upload is open
            errors.write(b"row 3,bad")
            raise MemoryError("the classifier died mid-file")

    with pytest.raises(MemoryError):
        job()
    assert _uploads(objects) == [] and not objects.exists(BUCKET, "results.csv")
    assert not objects.exists(BUCKET, "errors.csv")

    kept = objects.writer(BUCKET, "kept.csv", content_type="text/csv")
    with aborted_on_error(kept):
        kept.write(b"a,b")
    kept.complete()  # still the caller's to complete: the block neither completed nor aborted it
    assert objects.read_small(BUCKET, "kept.csv") == b"a,b"

def test_small_output_is_one_put(objects):
    writer = objects.writer(BUCKET, "small.json", content_type="application/json")
    writer.write(b"[]")
    writer.complete()
    assert objects.read_small(BUCKET, "small.json") == b"[]" and _uploads(objects) == []
    assert objects.client.head_object(Bucket=BUCKET, Key="small.json")["ContentType"] == "application/json"
    with pytest.raises(ValueError, match="already"):
        writer.complete()


def test_empty_output_is_an_empty_object(objects):
    writer = objects.writer(BUCKET, "empty.csv", content_type="text/csv")
    writer.complete()
    assert objects.head(BUCKET, "empty.csv").size == 0


def test_conditional_read(objects):
    objects.put(BUCKET, "in.csv", b"v1", content_type="text/csv")
    etag = objects.head(BUCKET, "in.csv").etag
    with objects.open_read(BUCKET, "in.csv", etag=etag) as stream:
        assert stream.read() == b"v1"
    objects.put(BUCKET, "in.csv", b"v2", content_type="text/csv")
    with pytest.raises(ObjectChangedError):
        objects.open_read(BUCKET, "in.csv", etag=etag)
    with pytest.raises(ObjectChangedError):
        objects.open_read(BUCKET, "missing.csv")


def test_missing_objects(objects):
    assert objects.head(BUCKET, "nope") is None and objects.read_small(BUCKET, "nope") is None
    objects.put(BUCKET, "big", b"x" * 100, content_type="text/plain")
    with pytest.raises(ValueError, match="over"):
        objects.read_small(BUCKET, "big", max_bytes=10)
