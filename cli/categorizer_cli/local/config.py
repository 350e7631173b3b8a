"""Where the local stack keeps its state and which loopback ports it uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from categorizer_cli.paths import PROJECT_ROOT

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
STAGE = "local"
DEMO_USERNAME = "demo"
# A demo password for a local emulator only; it guards nothing outside this machine.
DEMO_PASSWORD = "Demo-Categorizer-2026!"  # noqa: S105


@dataclass(frozen=True)
class LocalConfig:
    directory: Path
    moto_port: int
    api_port: int
    token_port: int
    host: str = "127.0.0.1"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def token_url(self) -> str:
        return f"http://{self.host}:{self.token_port}/oauth2/token"

    @property
    def outputs_file(self) -> Path:
        return self.directory / "outputs.json"

    @property
    def pid_file(self) -> Path:
        return self.directory / "stack.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "stack.log"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def ready_file(self) -> Path:
        return self.directory / "ready"

    @classmethod
    def from_env(cls) -> LocalConfig:
        return cls(
            directory=Path(os.environ.get("CATEGORIZER_LOCAL_DIR", PROJECT_ROOT / ".local")).resolve(),
            moto_port=int(os.environ.get("CATEGORIZER_MOTO_PORT", 4566)),
            api_port=int(os.environ.get("CATEGORIZER_API_PORT", 8000)),
            token_port=int(os.environ.get("CATEGORIZER_TOKEN_PORT", 4567)),
        )
