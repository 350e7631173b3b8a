"""Text columns per file (metadata) or per prefix (config object), and their errors."""

from __future__ import annotations

import pytest

from categorizer.batch.text_columns import resolve_text_columns
from categorizer.files.errors import FileFailure


def _resolve(metadata=None, configs=None, key="ingest/team/x/f.csv"):
    configs = configs or {}
    return resolve_text_columns(key=key, metadata=metadata or {}, ingest_prefix="ingest/",
                                read_config=configs.get)


def test_default_is_text():
    assert _resolve() == (("text",), "default")


def test_metadata_wins_over_config():
    configs = {"ingest/team/_categorizer.json": b'{"text_columns": ["body"]}'}
    assert _resolve({"text-columns": "title, description"}, configs) == (("title", "description"), "metadata")
    assert _resolve({}, configs) == (("body",), "ingest/team/_categorizer.json")


def test_nearest_config_wins():
    configs = {"ingest/team/_categorizer.json": b'{"text_columns": "a"}',
               "ingest/team/x/_categorizer.json": b'{"text_columns": "b,c"}'}
    assert _resolve({}, configs) == (("b", "c"), "ingest/team/x/_categorizer.json")


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"columns": ["a"]}', b'{"text_columns": 5}',
                                 b'{"text_columns": [1, 2]}', b'{"text_columns": ["a", "a"]}', b"\xff"])
def test_bad_config_fails_the_file_with_a_reason(raw):
    with pytest.raises(FileFailure) as failure:
        _resolve({}, {"ingest/_categorizer.json": raw})
    assert failure.value.reason == "invalid_config"


def test_bad_metadata_fails_the_file():
    with pytest.raises(FileFailure, match="invalid_text_columns"):
        _resolve({"text-columns": "a,a"})
    with pytest.raises(FileFailure, match="invalid_text_columns"):
        _resolve({"text-columns": ",".join(f"c{i}" for i in range(30))})
