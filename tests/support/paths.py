"""Where the tests find the repository, its events, its small data files and the shared data sets."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TEST_DATA = ROOT / "tests" / "data"
BANKING77 = Path(os.environ.get("CATEGORIZER_DATA", ROOT.parent / "shared" / "data" / "banking77"))
TINY_LABELS = ("card_arrival", "exchange_rate", "lost_or_stolen_card")
