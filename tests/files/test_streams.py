"""Byte-level input and output: size limit, bounded gunzip, truncation, BOM, reproducible gzip."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from categorizer.files.errors import FileFailure
from categorizer.files.streams import BoundedGunzip, open_binary_input, open_binary_output, open_text_input


def _read_all(stream) -> bytes:
    return b"".join(iter(lambda: stream.read(10_000), b""))


def test_bounded_gunzip_reads_multi_member_files():
    data = gzip.compress(b"a" * 100_000) + gzip.compress(b"b" * 10)
    assert _read_all(io.BufferedReader(BoundedGunzip(io.BytesIO(data), 1_000_000))) == b"a" * 100_000 + b"b" * 10


def test_bounded_gunzip_stops_a_bomb_without_inflating_it():
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = bomb.compress(b"\0" * (64 * 1024 * 1024)) + bomb.flush()
    assert len(data) < 100_000
    reader = BoundedGunzip(io.BytesIO(data), 1024 * 1024)
    buffer = bytearray(64 * 1024)

    def drain() -> None:
        while reader.readinto(buffer):
            pass

    with pytest.raises(FileFailure) as failure:
        drain()
    assert failure.value.reason == "decompressed_too_large"
    assert reader.bytes_out <= 1024 * 1024 + len(buffer)  # never more than the limit plus one read


@pytest.mark.parametrize("cut", [1, 4, 8, 30])
def test_truncated_gzip_fails_whatever_is_cut(cut):
    data = gzip.compress(b"text\n" + b"my card has not arrived\n" * 50)[:-cut]
    with pytest.raises(FileFailure, match="truncated_gzip"):
        _read_all(open_binary_input(io.BytesIO(data), gzip_compressed=True, max_bytes=10**6))


def test_size_limit_applies_before_decompression():
    with pytest.raises(FileFailure, match="file_too_large"):
        _read_all(open_binary_input(io.BytesIO(b"x" * 5000), gzip_compressed=False, max_bytes=4999))
    assert len(_read_all(open_binary_input(io.BytesIO(b"x" * 5000), gzip_compressed=False, max_bytes=5000))) == 5000


def test_bom_is_removed_and_reported():
    text, encoding = open_text_input(io.BufferedReader(io.BytesIO(b"\xef\xbb\xbfabc")), newline="")
    assert (text.read(), encoding.bom, encoding.name) == ("abc", b"\xef\xbb\xbf", "utf-8")
    text, encoding = open_text_input(io.BufferedReader(io.BytesIO(b"abc")), newline="")
    assert (text.read(), encoding.bom) == ("abc", b"")


def test_gzip_output_is_reproducible_and_leaves_the_sink_open():
    sinks = []
    for _ in range(2):
        sink = io.BytesIO()
        writer = open_binary_output(sink, gzip_compressed=True)
        writer.write(b"hello " * 1000)
        writer.close()
        assert not sink.closed
        sinks.append(sink.getvalue())
    assert sinks[0] == sinks[1] and gzip.decompress(sinks[0]) == b"hello " * 1000
