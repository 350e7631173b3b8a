"""Where the CLI finds things by default (relative to the project root)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CATEGORIZER_ARTIFACTS", PROJECT_ROOT / "artifacts"))
MODELS_DIR = ARTIFACTS / "models"
DEFAULT_MODEL = ARTIFACTS / "model"  # symlink to the latest default build
DATA_DIR = Path(os.environ.get("CATEGORIZER_DATA", PROJECT_ROOT.parent / "shared" / "data" / "banking77"))
