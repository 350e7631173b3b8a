"""Output keys mirror the ingest key under the results prefix; keys that could escape it are refused."""

from __future__ import annotations

import pytest

from categorizer.batch.keys import UnsafeKeyError, file_spec_or_failure, plan_output_keys
from categorizer.batch.text_columns import config_keys


def _plan(key: str, *, ingest_prefix="ingest/", results_prefix="results/", results_bucket="results"):
    spec, _ = file_spec_or_failure(key)
    return plan_output_keys(bucket="ingest", key=key, spec=spec, ingest_prefix=ingest_prefix,
                            results_prefix=results_prefix, results_bucket=results_bucket)


@pytest.mark.parametrize(("key", "results", "errors", "manifest"), [
    ("ingest/a.csv", "results/a.csv", "results/a.errors.csv", "results/a.manifest.json"),
    ("ingest/team a/Q3 report+final été.csv.gz", "results/team a/Q3 report+final été.csv.gz",
     "results/team a/Q3 report+final été.errors.csv.gz", "results/team a/Q3 report+final été.manifest.json"),
    ("ingest/a+b%2Fc (1).jsonl", "results/a+b%2Fc (1).jsonl", "results/a+b%2Fc (1).errors.jsonl",
     "results/a+b%2Fc (1).manifest.json"),
    ("ingest/x/y/z.json", "results/x/y/z.json", "results/x/y/z.errors.json", "results/x/y/z.manifest.json"),
    # A workbook's results are a CSV (and a workbook beside it); an unknown format's report is JSON Lines.
    ("ingest/sheet.xlsx", "results/sheet.csv", "results/sheet.errors.csv", "results/sheet.manifest.json"),
    ("ingest/sheet.numbers", "results/sheet.numbers.jsonl", "results/sheet.numbers.errors.jsonl",
     "results/sheet.numbers.manifest.json"),
    ("ingest/..hidden.csv", "results/..hidden.csv", "results/..hidden.errors.csv", "results/..hidden.manifest.json"),
])
def test_output_keys_mirror_the_ingest_key(key, results, errors, manifest):
    keys = _plan(key)
    assert (keys.bucket, keys.results, keys.errors, keys.manifest) == ("results", results, errors, manifest)


@pytest.mark.parametrize("key", [
    "ingest/../a.csv", "ingest/a/../../b.csv", "ingest/./a.csv", "ingest/a/..", "ingest/..\\a.csv",
    "other/a.csv", "ingest/", "ingest//a.csv", "ingest/a\x00.csv", "ingest/a\n.csv", "ingestx/a.csv",
    "ingest/_work/0123456789abcdef01234567/chunks/00001.jsonl", "ingest/a//b.csv",
])
def test_unsafe_keys_are_refused(key):
    with pytest.raises(UnsafeKeyError):
        _plan(key)


def test_results_under_the_ingest_prefix_would_recurse_and_are_refused():
    with pytest.raises(UnsafeKeyError, match=r"under the ingest prefix"):
        _plan("ingest/a.csv", results_prefix="ingest/out/", results_bucket=None)
    with pytest.raises(UnsafeKeyError):
        _plan("a.csv", ingest_prefix="", results_prefix="results/", results_bucket=None)
    # Same bucket, disjoint prefixes: fine.
    assert _plan("ingest/a.csv", results_bucket=None).bucket == "ingest"


def test_config_keys_nearest_first():
    assert config_keys("ingest/a/b/f.csv", "ingest/") == [
        "ingest/a/b/_categorizer.json", "ingest/a/_categorizer.json", "ingest/_categorizer.json"]
    assert config_keys("ingest/f.csv", "ingest/") == ["ingest/_categorizer.json"]
