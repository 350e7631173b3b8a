"""classify_stream and classify_local_file: output columns, clash suffix, joins, order, determinism."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from categorizer.files.errors import FileFailure
from categorizer.files.formats import detect_format
from categorizer.files.pipeline import CLASH_SUFFIX, classify_local_file, errors_path_for, output_column_names
from categorizer.files.text_columns import join_text_columns

TEXTS = ["my card has not arrived yet", "what is the exchange rate for euros", "someone stole my card"]


def _csv(rows: list[list[str]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def test_csv_output_keeps_every_input_column_and_adds_ours(run_file, classifier):
    data = _csv([["id", "text", "amount"], *[[str(i), text, "-12.5"] for i, text in enumerate(TEXTS)]])
    run = run_file("a.csv", data)
    header = run.results.decode().splitlines()[0].split(",")
    assert header == ["id", "text", "amount", "predicted_label", "confidence", "needs_review", "out_of_scope",
                      "novelty", "top_k", "model_version"]
    expected = classifier.classify(TEXTS)
    for row, prediction, (i, text) in zip(run.result_rows(), expected, enumerate(TEXTS), strict=True):
        assert (row["id"], row["text"], row["amount"]) == (str(i), text, "-12.5")
        assert row["predicted_label"] == prediction.label
        assert row["confidence"] == f"{prediction.confidence:.6f}"
        assert row["needs_review"] == ("true" if prediction.needs_review else "false")
        assert row["out_of_scope"] == ("true" if prediction.out_of_scope else "false")
        assert row["novelty"] == f"{prediction.novelty:.6f}" and prediction.novelty > 0
        assert json.loads(row["top_k"]) == [{"label": s.label, "score": s.score} for s in prediction.top_k]
        assert row["model_version"] == classifier.version
    assert run.summary.counts == {p.label: 1 for p in expected}
    assert run.error_rows() == []


def test_out_of_scope_rows_are_flagged_and_counted(run_file, classifier):
    texts = [*TEXTS, "how do I bake sourdough bread", "lorem ipsum dolor sit amet"]
    run = run_file("a.jsonl", "\n".join(json.dumps({"text": t}) for t in texts).encode())
    rows = [json.loads(line) for line in run.results.decode().splitlines()]
    expected = classifier.classify(texts)
    assert [r["out_of_scope"] for r in rows] == [p.out_of_scope for p in expected] == [False] * 3 + [True] * 2
    assert [r["novelty"] for r in rows] == [p.novelty for p in expected]
    assert all(r["needs_review"] for r in rows[3:])
    assert run.summary.out_of_scope == 2 and run.summary.to_dict()["out_of_scope"] == 2


def test_clashing_input_columns_are_never_overwritten(run_file):
    data = _csv([["text", "confidence", "confidence_categorizer", "top_k"], [TEXTS[0], "high", "x", "mine"]])
    run = run_file("a.csv", data)
    (row,) = run.result_rows()
    assert (row["confidence"], row["confidence_categorizer"], row["top_k"]) == ("high", "x", "mine")
    assert float(row[f"confidence{CLASH_SUFFIX}_2"]) > 0
    assert json.loads(row[f"top_k{CLASH_SUFFIX}"])[0]["label"] == row["predicted_label"]
    assert run.summary.output_columns["confidence"] == "confidence_categorizer_2"


def test_output_column_names():
    assert output_column_names(["text"])["predicted_label"] == "predicted_label"
    assert output_column_names(["predicted_label"])["predicted_label"] == "predicted_label_categorizer"


def test_json_clash_is_resolved_per_object(run_file):
    data = json.dumps([{"text": TEXTS[0], "needs_review": "by hand"}, {"text": TEXTS[1]}]).encode()
    first, second = run_file("a.json", data).result_rows()
    assert first["needs_review"] == "by hand" and isinstance(first["needs_review_categorizer"], bool)
    assert isinstance(second["needs_review"], bool)
    assert isinstance(first["top_k"], list) and isinstance(first["confidence"], float)


def test_several_text_columns_are_joined_like_training_does(run_file, classifier):
    data = _csv([["title", "description"], ["Card", "has not arrived"], ["", "exchange rate?"], ["", ""]])
    run = run_file("a.csv", data, text_columns=("title", "description"))
    assert run.summary.rows_classified == 2 and dict(run.summary.rejected_by_reason) == {"empty_text": 1}
    expected = classifier.classify([join_text_columns(["Card", "has not arrived"]),
                                    join_text_columns(["", "exchange rate?"])])
    assert [row["confidence"] for row in run.result_rows()] == [f"{p.confidence:.6f}" for p in expected]
    assert join_text_columns(["Card", "has not arrived"]) == "Card. has not arrived"


def test_output_mirrors_delimiter_and_bom(run_file):
    run = run_file("a.csv", b"\xef\xbb\xbfid;text\n1;" + TEXTS[0].encode() + b"\n")
    assert run.results.startswith(b"\xef\xbb\xbfid;text;predicted_label;")
    assert run.errors.startswith(b"\xef\xbb\xbfrow;line;reason;message;excerpt")


def test_order_is_kept_across_batches_for_results_and_errors(run_file):
    rows = [["id", "text"]]
    for i in range(50):
        rows.append([str(i), "" if i % 7 == 3 else f"{TEXTS[i % 3]} {i}"])
    run = run_file("a.csv", _csv(rows), batch_size=8)
    assert [int(r["id"]) for r in run.result_rows()] == [i for i in range(50) if i % 7 != 3]
    assert [int(e["row"]) for e in run.error_rows()] == [i + 1 for i in range(50) if i % 7 == 3]


def test_gzip_output_is_byte_identical_between_runs(run_file):
    data = gzip.compress(_csv([["text"], *[[t] for t in TEXTS * 20]]))
    first, second = run_file("a.csv.gz", data), run_file("a.csv.gz", data)
    assert first.raw_results == second.raw_results
    assert first.raw_results[4:8] == b"\0\0\0\0"  # no timestamp in the gzip header


@pytest.mark.parametrize("name", ["a.json", "a.jsonl"])
def test_json_outputs_are_valid_even_when_empty(run_file, name):
    data = b"[]" if name == "a.json" else b'{"text": ""}\n'
    run = run_file(name, data)
    assert run.result_rows() == []
    assert len(run.error_rows()) == (0 if name == "a.json" else 1)


def test_after_batch_can_fail_the_file(run_file):
    def out_of_time(summary):
        raise FileFailure("time_budget_exceeded", f"stopped after {summary.rows_in}")

    run = run_file("a.csv", _csv([["text"], *[[t] for t in TEXTS * 10]]), batch_size=10, after_batch=out_of_time)
    assert (run.summary.status, run.summary.failure_reason, run.summary.rows_in) == ("failed",
                                                                                      "time_budget_exceeded", 10)


def test_errors_path_naming():
    assert errors_path_for(Path("/o/out.csv.gz"), detect_format("in.csv.gz")) == Path("/o/out.errors.csv.gz")
    assert errors_path_for(Path("/o/result"), detect_format("in.jsonl")) == Path("/o/result.errors.jsonl")


def test_local_file_success_writes_results_and_errors(tmp_path, classifier):
    source = tmp_path / "in.csv"
    source.write_bytes(_csv([["text"], [TEXTS[0]], [""]]))
    result = classify_local_file(source, tmp_path / "out" / "out.csv", classifier=classifier)
    assert result.summary.succeeded and result.results_path == tmp_path / "out" / "out.csv"
    assert result.errors_path == tmp_path / "out" / "out.errors.csv"
    assert result.results_path.read_text().count("\n") == 2 and result.errors_path.read_text().count("\n") == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["out.csv", "out.errors.csv"]  # no temp files


def test_local_file_failure_writes_only_a_report(tmp_path, classifier):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"title": "no text here"}\n')
    result = classify_local_file(source, tmp_path / "out.jsonl", classifier=classifier)
    assert result.results_path is None and not (tmp_path / "out.jsonl").exists()
    (report,) = [json.loads(line) for line in result.errors_path.read_text().splitlines()]
    assert report["reason"] == "missing_text_column" and report["row"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.errors.jsonl"]


def test_local_file_unknown_format_raises(tmp_path, classifier):
    source = tmp_path / "in.ods"
    source.write_bytes(b"PK")
    with pytest.raises(FileFailure, match="unknown_format"):
        classify_local_file(source, tmp_path / "out.ods", classifier=classifier)
