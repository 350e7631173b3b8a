"""Enough of a Lambda context for the handlers and Powertools' decorators when code runs outside Lambda.

The one stub: the local stack's event pump and training runner, the tests (tests/support) and the benchmarks
all use it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from categorizer_cli.local.config import ACCOUNT, REGION


@dataclass
class LocalLambdaContext:
    function_name: str = "categorizer-local"
    memory_limit_in_mb: int = 2048
    timeout_seconds: int = 300
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]local"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
