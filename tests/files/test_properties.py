"""Hypothesis properties: reading what a writer wrote gives the input back; no row is ever lost."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from categorizer.files.csv_format import CsvReader, CsvWriter, neutralise_formula
from categorizer.files.formats import Limits, detect_format
from categorizer.files.json_format import JsonArrayReader, JsonArrayWriter, JsonLinesReader, JsonLinesWriter
from categorizer.files.pipeline import (
    JobSummary,
    OutputWriters,
    classify_items,
    classify_stream,
    join_parts,
    open_items,
)
from categorizer.files.rows import InputRow
from categorizer.files.streams import open_binary_input, open_binary_output, open_text_input

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Any text except NUL (a NUL makes a row an error by design) and lone surrogates (not encodable).
cell_text = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
column_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ 0123456789", min_size=1, max_size=12).filter(
    lambda name: name.strip() == name)


@st.composite
def csv_tables(draw):
    extra = draw(st.lists(column_name, max_size=4, unique=True).filter(lambda names: "text" not in names))
    columns = ["text", *extra]
    rows = draw(st.lists(st.lists(cell_text, min_size=len(columns), max_size=len(columns)), max_size=25))
    return columns, rows


def _write_and_read_csv(columns, rows, *, delimiter, bom, gzip, neutralise):
    sink = io.BytesIO()
    writer = CsvWriter(open_binary_output(sink, gzip_compressed=gzip), columns=columns, delimiter=delimiter,
                       bom=bom, neutralise_formulas=neutralise)
    for row in rows:
        writer.write(row)
    writer.close()
    binary = open_binary_input(io.BytesIO(sink.getvalue()), gzip_compressed=gzip, max_bytes=10**8)
    text, encoding = open_text_input(binary, newline="")
    had_bom = bool(encoding.bom)
    reader = CsvReader(text, text_columns=["text"], limits=Limits())
    read = list(reader.rows())
    assert all(isinstance(item, InputRow) for item in read), read
    return reader, had_bom, [item.record for item in read]


@PROPERTY_SETTINGS
@given(csv_tables(), st.sampled_from([",", ";", "\t", "|"]), st.booleans(), st.booleans())
def test_csv_round_trip(table, delimiter, bom, gzip):
    columns, rows = table
    if len(columns) == 1:
        delimiter = ","  # one column has no delimiter to detect: a file like that is read as ","
    reader, had_bom, read = _write_and_read_csv(columns, rows, delimiter=delimiter, bom=bom, gzip=gzip,
                                                neutralise=False)
    assert (reader.columns, reader.delimiter, had_bom) == (columns, delimiter, bom)
    assert read == rows


@PROPERTY_SETTINGS
@given(csv_tables())
def test_csv_round_trip_with_formulas_neutralised(table):
    columns, rows = table
    _, _, read = _write_and_read_csv(columns, rows, delimiter=",", bom=False, gzip=False, neutralise=True)
    assert read == [[neutralise_formula(cell) for cell in row] for row in rows]


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
json_objects = st.builds(lambda text, rest: {"text": text, **{k: v for k, v in rest.items() if k != "text"}},
                         st.text() | st.none(), st.dictionaries(st.text(max_size=8), json_values, max_size=4))


@PROPERTY_SETTINGS
@given(st.lists(json_objects, max_size=20), st.booleans(), st.booleans())
def test_json_array_and_lines_round_trip(objects, lines, gzip):
    sink = io.BytesIO()
    target = open_binary_output(sink, gzip_compressed=gzip)
    writer = JsonLinesWriter(target) if lines else JsonArrayWriter(target)
    for item in objects:
        writer.write(item)
    writer.close()
    if not lines:
        assert json.loads(_decompressed(sink.getvalue(), gzip)) == objects
    if lines and not objects:
        return  # an empty JSON Lines file is reported as empty_file (see the catalogue)
    binary = open_binary_input(io.BytesIO(sink.getvalue()), gzip_compressed=gzip, max_bytes=10**8)
    text, _ = open_text_input(binary, newline=None)
    reader_class = JsonLinesReader if lines else JsonArrayReader
    read = list(reader_class(text, text_columns=["text"], limits=Limits()).rows())
    assert [item.record for item in read] == objects


def _decompressed(data: bytes, gzip: bool) -> bytes:
    import gzip as gzip_module

    return gzip_module.decompress(data) if gzip else data


# Files built from fragments that are valid, broken, or plain hostile.
csv_fragments = st.sampled_from([
    "my card has not arrived", "exchange rate", "", "   ", '"quoted, with comma"', '"open quote', 'stray"quote',
    '"multi\nline"', "a,b,c,d", "=cmd|' /C calc'!A0", "\x00", "\r", ";", "|", "\t", "💳", "x" * 300,
]) | st.text(max_size=30)
raw_bytes = st.binary(max_size=40)


@st.composite
def hostile_csv_files(draw):
    header = draw(st.sampled_from([b"text\n", b"id,text\n", b"id;text;note\r\n", b"\xef\xbb\xbftext|x\n"]))
    lines = draw(st.lists(st.lists(csv_fragments, min_size=1, max_size=4).map(",".join).map(str.encode)
                          | raw_bytes, max_size=30))
    return header + b"\n".join(lines)


@st.composite
def hostile_jsonl_files(draw):
    first = b'{"text": "my card has not arrived"}\n'
    lines = draw(st.lists(st.sampled_from([b'{"text": "exchange rate"}', b'{"text": null}', b"[1]", b"{bad",
                                           b'{"text": NaN}', b'{"text": 3}', b"", b'{"text": "\xff"}'])
                          | raw_bytes, max_size=30))
    return first + b"\n".join(lines)


@PROPERTY_SETTINGS
@given(st.one_of(hostile_csv_files().map(lambda d: ("f.csv", d)), hostile_jsonl_files().map(lambda d: ("f.jsonl", d))))
def test_no_row_is_ever_lost(run_file, named_file):
    name, data = named_file
    run = run_file(name, data, batch_size=7)
    summary = run.summary
    assert summary.rows_in == summary.rows_classified + summary.rows_rejected
    if summary.succeeded:
        assert len(run.result_rows()) == summary.rows_classified
        assert len(run.error_rows()) == summary.rows_rejected
        assert sum(summary.counts.values()) == summary.rows_classified
        assert sum(summary.rejected_by_reason.values()) == summary.rows_rejected
        if name.endswith(".csv"):
            _assert_no_live_formulas(run.results, summary.delimiter)
    else:
        assert summary.failure_reason and summary.failure_message


def _assert_no_live_formulas(data: bytes, delimiter: str) -> None:
    for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter):
        for cell in row:
            assert neutralise_formula(cell) == cell, cell


@PROPERTY_SETTINGS
@given(st.one_of(hostile_csv_files().map(lambda d: ("f.csv", d)), hostile_jsonl_files().map(lambda d: ("f.jsonl", d)),
                 st.lists(json_objects, max_size=12).map(lambda o: ("f.json", json.dumps(o).encode()))),
       st.integers(min_value=1, max_value=4), st.booleans())
def test_split_and_join_gives_the_bytes_of_a_single_run(classifier, named_file, batches_per_chunk, gzip):
    """The chunk fan-out's property: parts written chunk by chunk and joined equal one pass."""
    name, data = named_file
    if gzip:
        import gzip as gzip_module

        name, data = name + ".gz", gzip_module.compress(data)
    spec = detect_format(name)
    single_results, single_errors = io.BytesIO(), io.BytesIO()
    summary = classify_stream(io.BytesIO(data), results=single_results, errors=single_errors,
                              classifier=classifier, spec=spec, batch_size=4)
    if not summary.succeeded:
        return
    layout, items = open_items(io.BytesIO(data), spec=spec, text_columns=["text"], limits=Limits())
    items = list(items)
    chunk = 4 * batches_per_chunk
    result_parts, error_parts = [], []
    for start in range(0, len(items), chunk):
        results, errors = io.BytesIO(), io.BytesIO()
        writers = OutputWriters(layout, results, errors, part=True)
        part_summary = JobSummary(format=spec.format.value, gzip=spec.gzip, text_columns=["text"],
                                  model_version=classifier.version)
        classify_items(items[start : start + chunk], writers, classifier, summary=part_summary, batch_size=4)
        writers.close()
        result_parts.append(results.getvalue())
        error_parts.append(errors.getvalue())
    joined_results, joined_errors = io.BytesIO(), io.BytesIO()
    join_parts(layout, [io.BytesIO(p) for p in result_parts], joined_results, errors=False)
    join_parts(layout, [io.BytesIO(p) for p in error_parts], joined_errors, errors=True)
    assert joined_results.getvalue() == single_results.getvalue()
    assert joined_errors.getvalue() == single_errors.getvalue()
