"""Writes the example files teams actually have: a Windows-1252 CSV (as Excel on Windows saves it) and an .xlsx.

Usage: .venv/bin/python examples/make_examples.py   (writes examples/support-messages-windows1252.csv and
examples/support-messages.xlsx; the workbook is generated rather than kept in git as a binary blob)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
ROWS = [
    ("1", "Zoë", "Ma carte n\u2019est toujours pas arrivée"),
    ("2", "Jürgen", "Überweisung von 250 € nicht angekommen \u2013 bitte prüfen"),
    ("3", "Núñez", "Me cobraron 3 € de comisión en el cajero"),
    ("4", "Renée", "J\u2019ai été débité deux fois pour un café à 2,50 €"),
    ("5", "Åsa", "I forgot my PIN and the app is locked"),
]


def main() -> None:
    lines = ["id;name;text"] + [";".join(row) for row in ROWS]
    (HERE / "support-messages-windows1252.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Messages"
    sheet.append(["id", "name", "text", "received"])
    for index, (number, name, text) in enumerate(ROWS):
        sheet.append([int(number), name, text, dt.datetime(2026, 11, 1 + index, 9, 30)])
    workbook.save(HERE / "support-messages.xlsx")


if __name__ == "__main__":
    main()
