"""Byte streams in and out: size limits, bounded gzip decompression, text in a detected encoding.

Everything streams in fixed-size chunks, so memory does not grow with the file.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

from categorizer.files.encodings import SAMPLE_BYTES, UNDECODABLE_ERRORS, TextEncoding, detect_encoding
from categorizer.files.errors import FileFailure

CHUNK_BYTES = 64 * 1024


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


class LimitedReader(io.RawIOBase):
    """Reads a stream and fails the file once more than `max_bytes` came out of it."""

    def __init__(self, raw: BinaryIO, max_bytes: int, *, what: str = "file") -> None:
        self._raw = raw
        self._max = max_bytes
        self._what = what
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        if not data:
            return 0
        self.bytes_read += len(data)
        if self.bytes_read > self._max:
            raise FileFailure("file_too_large", f"the {self._what} is over the {_mib(self._max)} limit")
        buffer[: len(data)] = data
        return len(data)


class BoundedGunzip(io.RawIOBase):
    """Gzip decompression that stops at `max_output` bytes (a bomb guard) and notices truncation.

    Multi-member files (concatenated gzip) are read to the end like `gzip` does. A stream that ends in
    the middle of a member is a truncated upload: the whole file fails rather than yielding a prefix.
    """

    def __init__(self, raw: BinaryIO, max_output: int) -> None:
        self._raw = raw
        self._max = max_output
        self._decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes not yet fed
        self._in_member = False
        self.bytes_out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while True:
            if self._pending:
                try:
                    out = self._decompressor.decompress(self._pending, len(buffer))
                except zlib.error as exc:
                    raise FileFailure("corrupt_gzip", f"the gzip data is corrupt ({exc})") from exc
                self._pending = self._decompressor.unconsumed_tail
                if self._decompressor.eof:
                    self._pending = self._decompressor.unused_data
                    self._decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                    self._in_member = bool(self._pending)
                if out:
                    self.bytes_out += len(out)
                    if self.bytes_out > self._max:
                        raise FileFailure("decompressed_too_large",
                                          f"the file decompresses to more than {_mib(self._max)} "
                                          "(limit; possibly a gzip bomb)")
                    buffer[: len(out)] = out
                    return len(out)
                continue
            data = self._raw.read(CHUNK_BYTES)
            if not data:
                if self._in_member:
                    raise FileFailure("truncated_gzip", "the gzip stream ends before its end marker "
                                                        "(truncated upload?)")
                return 0
            self._pending = data
            self._in_member = True


def open_binary_input(source: BinaryIO, *, gzip_compressed: bool, max_bytes: int) -> io.BufferedReader:
    """The decompressed bytes of `source`, with the size limit applied before and after decompression."""
    stream: io.RawIOBase = LimitedReader(source, max_bytes)
    if gzip_compressed:
        stream = BoundedGunzip(io.BufferedReader(stream, CHUNK_BYTES), max_bytes)
    return io.BufferedReader(stream, CHUNK_BYTES)


def open_text_input(binary: io.BufferedReader, *, newline: str | None) -> tuple[io.TextIOWrapper, TextEncoding]:
    """The text of `binary`, in the encoding `detect_encoding` decides; any BOM removed.

    Bytes the chosen encoding cannot decode survive as lone surrogates (U+DC80..U+DCFF), so the reader
    rejects just the row that has them: the decision made on the sample is confirmed over the whole stream,
    row by row, and never crashes the file.
    """
    sample = binary.read(SAMPLE_BYTES)
    encoding = detect_encoding(sample)
    stream = io.BufferedReader(_Prefixed(sample[len(encoding.bom):], binary), CHUNK_BYTES)
    text = io.TextIOWrapper(stream, encoding=encoding.codec, errors=UNDECODABLE_ERRORS,  # type: ignore[arg-type]
                            newline=newline)
    return text, encoding


class _Prefixed(io.RawIOBase):
    """`head` followed by the rest of `tail`: the sample read for detection is not lost."""

    def __init__(self, head: bytes, tail: BinaryIO | io.BufferedReader) -> None:
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._tail.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class DetachableSink(io.RawIOBase):
    """Forwards writes to a sink it never closes; once detached, later writes (say, a wrapper flushing
    while being garbage-collected after a failure) are dropped instead of landing in a discarded output."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink: BinaryIO | None = sink

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        if self._sink is not None:
            self._sink.write(data)
        return len(data)

    def detach_sink(self) -> None:
        self._sink = None


def open_binary_output(sink: BinaryIO, *, gzip_compressed: bool) -> BinaryIO:
    """A writer into `sink`; gzip output is byte-for-byte reproducible (no timestamp, no file name)."""
    raw = sink if isinstance(sink, DetachableSink) else DetachableSink(sink)
    target = io.BufferedWriter(raw, CHUNK_BYTES)
    if not gzip_compressed:
        return target
    return _GzipOutput(target)


class _GzipOutput(gzip.GzipFile):
    """GzipFile that also flushes and closes the buffered writer underneath it."""

    def __init__(self, target: io.BufferedWriter) -> None:
        super().__init__(filename="", fileobj=target, mode="wb", compresslevel=6, mtime=0)
        self._target = target

    def flush(self, zlib_mode: int = zlib.Z_SYNC_FLUSH) -> None:
        """No sync-flush marker on flush(): the compressed bytes then depend only on the bytes written,
        not on when a wrapper (TextIOWrapper) flushed, which keeps outputs reproducible. close() finishes."""

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._target.close()
