"""Real .xlsx files for the tests, the examples and the memory benchmark, written with openpyxl.

openpyxl writes formulas without the value Excel caches beside them (it does not calculate), so
`cached` adds those values to the sheet XML afterwards, as Excel itself stores them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape


def write_workbook(path: Path, rows: Iterable[Sequence[Any]], *, sheet: str = "Sheet1",
                   merged: Sequence[str] = (), cached: dict[str, Any] | None = None,
                   other_sheets: Sequence[str] = (), write_only: bool = False) -> Path:
    """Rows (None = empty cell, a str starting with '=' = formula) into `path`; `merged` cell ranges."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=write_only)
    worksheet = workbook.create_sheet(sheet) if write_only else workbook.active
    if not write_only:
        worksheet.title = sheet
    for row in rows:
        worksheet.append(list(row))
    for cell_range in merged:
        worksheet.merge_cells(cell_range)
    for name in other_sheets:
        workbook.create_sheet(name).append(["other", "sheet"])
    workbook.save(path)
    if cached:
        _add_cached_values(path, cached)
    return path


def _add_cached_values(path: Path, cached: dict[str, Any]) -> None:
    member = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    xml = members[member].decode("utf-8")
    for ref, value in cached.items():
        kind = ' t="str"' if isinstance(value, str) else ""
        text = escape(str(value))
        xml, count = re.subn(rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v\s*/>', rf'<c r="{ref}"\1{kind}><f>\2</f>'
                             rf"<v>{text}</v>", xml)
        assert count == 1, f"no formula cell {ref}"
    members[member] = xml.encode("utf-8")
    with tempfile.NamedTemporaryFile(delete=False, dir=path.parent) as handle, \
            zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    shutil.move(handle.name, path)


def add_member(path: Path, name: str, data: bytes) -> Path:
    """A copy of the workbook with one more zip member (e.g. xl/vbaProject.bin: a macro workbook)."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(name, data)
    return path
