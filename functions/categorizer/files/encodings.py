"""Which text encoding a file is in, decided from a bounded sample.

Teams export from Excel on Windows (Windows-1252), old tools (Latin-1/-9, Windows-1250/1251) and
Notepad (UTF-16 with a BOM). The decision is made on the first SAMPLE_BYTES: a byte order mark wins;
a sample that is valid UTF-8 is UTF-8; otherwise charset-normalizer ranks the candidate single-byte
encodings and ties go to the most common one. The readers then decode the whole stream with that
encoding, and bytes it cannot decode become a rejected row (UNDECODABLE_ERRORS), never a crash.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

SAMPLE_BYTES = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
# The error handler the readers decode with: each undecodable byte becomes U+DC80..U+DCFF (as
# "surrogateescape" does), also for bytes below 0x80 that a UTF-16 stream cannot decode, which
# "surrogateescape" refuses with an exception.
UNDECODABLE_ERRORS = "categorizer-undecodable"
# Single-byte candidates, most common first: equally good candidates go to the earlier one
# (Windows-1252 and Windows-1250 decode most Western text the same way; 1252 is the Excel default).
SINGLE_BYTE_CANDIDATES = ("cp1252", "iso8859_15", "cp1250", "cp1251", "mac_roman")
_BOMS = (
    (UTF8_BOM, "utf-8", "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
)


def _undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start:error.end]
    return "".join(chr(0xDC80 | (byte & 0x7F)) for byte in bad), error.end


codecs.register_error(UNDECODABLE_ERRORS, _undecodable)


@dataclass(frozen=True)
class TextEncoding:
    """The encoding a file is read with, and how sure the decision is (for the manifest)."""

    codec: str  # a Python codec name, as used to decode
    name: str  # what the manifest says: utf-8, utf-16, cp1252...
    confidence: float  # 1.0 for a BOM or valid UTF-8; 1 - charset-normalizer's chaos otherwise; 0 undecided
    bom: bytes = b""  # the byte order mark the file starts with (removed before decoding)
    decided: bool = True  # False: no candidate fits; read as UTF-8 so the bad rows are reported

    def to_dict(self) -> dict[str, object]:
        return {"encoding": self.name, "encoding_confidence": self.confidence, "encoding_decided": self.decided}


UTF8 = TextEncoding("utf-8", "utf-8", 1.0)


def _is_utf8(sample: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)  # the sample may cut a character
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(sample: bytes) -> TextEncoding:
    """The encoding of a file whose first bytes are `sample` (at most SAMPLE_BYTES of them)."""
    for bom, codec, name in _BOMS:
        if sample.startswith(bom):
            return TextEncoding(codec, name, 1.0, bom=bom)
    if _is_utf8(sample):
        return UTF8
    if b"\x00" not in sample:  # NUL bytes without a UTF-16 BOM: binary, not a single-byte text
        from charset_normalizer import from_bytes  # imported on demand: most files are UTF-8

        matches = list(from_bytes(sample, cp_isolation=list(SINGLE_BYTE_CANDIDATES)))
        if matches:
            # A match stands for every candidate that decodes the sample to the same text
            # (could_be_from_charset); among the least chaotic, the most common candidate wins.
            least = min(match.chaos for match in matches)
            fitting = {_codec_name(name): match for match in matches if match.chaos <= least + 0.01
                       for name in match.could_be_from_charset}
            codec = min(fitting, key=lambda name: SINGLE_BYTE_CANDIDATES.index(name)
                        if name in SINGLE_BYTE_CANDIDATES else len(SINGLE_BYTE_CANDIDATES))
            return TextEncoding(codec, codec, round(1.0 - fitting[codec].chaos, 3))
    return TextEncoding("utf-8", "utf-8", 0.0, decided=False)


def _codec_name(name: str) -> str:
    normalised = codecs.lookup(name).name.replace("-", "_")
    for candidate in SINGLE_BYTE_CANDIDATES:
        if codecs.lookup(candidate).name.replace("-", "_") == normalised:
            return candidate
    return name
