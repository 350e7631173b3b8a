"""The training entrypoint's `labels` channel: the catalogue's map applied to copies of the base data and the
hold-out (rows of a label retired without replacement dropped), the stored files untouched."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from model_build.sagemaker_entry import mapped_copy, read_label_map


def test_the_label_map_renames_merges_and_drops_rows_in_a_copy(tmp_path: Path) -> None:
    source = tmp_path / "base" / "train.csv"
    source.parent.mkdir()
    rows = [("my card is lost", "lost_card"), ("stolen wallet", "stolen_card"), ("rate today?", "exchange_rate"),
            ("top up failed", "top_up"), ('a "quoted", comma text', "top_up")]
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    channel = tmp_path / "labels"
    channel.mkdir()
    (channel / "label_map.json").write_text(json.dumps({
        "map": {"stolen_card": "lost_card", "top_up": "top up / reload", "exchange_rate": None},
        "labels": ["lost_card", "top up / reload", "mortgage"], "catalogue_revision": 4}))

    mapping, labels = read_label_map(channel)
    copy = mapped_copy(source, tmp_path / "mapped", label_column="category", mapping=mapping)

    with copy.open(encoding="utf-8", newline="") as handle:
        mapped = [(r["text"], r["category"]) for r in csv.DictReader(handle)]
    assert mapped == [("my card is lost", "lost_card"), ("stolen wallet", "lost_card"),
                      ("top up failed", "top up / reload"), ('a "quoted", comma text', "top up / reload")]
    assert labels == {"lost_card", "top up / reload", "mortgage"}
    assert source.read_text(encoding="utf-8").count("stolen_card") == 1  # the stored file is untouched


def test_json_lines_are_mapped_too_and_no_channel_means_no_map(tmp_path: Path) -> None:
    source = tmp_path / "test.jsonl"
    source.write_text('{"text": "a", "category": "old"}\n{"text": "b", "category": "gone"}\n'
                      '{"text": "c", "category": "kept"}\n', encoding="utf-8")
    copy = mapped_copy(source, tmp_path / "out", label_column="category", mapping={"old": "new", "gone": None})
    assert [json.loads(line)["category"] for line in copy.read_text().splitlines()] == ["new", "kept"]
    assert read_label_map(None) == ({}, set())
    assert read_label_map(tmp_path / "no-such-channel") == ({}, set())
