"""The champion pointer: one SSM String parameter per stage holding {"version": ..., "key": ...}.

Read here without a cache (the registry must see its own writes); the serving side reads it through
Powertools Parameters with a max_age instead (model_store).
"""

from __future__ import annotations

from typing import Any

import boto3


class ChampionParameter:
    def __init__(self, name: str, client: Any | None = None) -> None:
        self.name = name
        self.client = client or boto3.client("ssm")

    def read(self) -> str | None:
        try:
            return self.client.get_parameter(Name=self.name)["Parameter"]["Value"]
        except self.client.exceptions.ParameterNotFound:
            return None

    def write(self, value: str) -> None:
        self.client.put_parameter(Name=self.name, Value=value, Type="String", Overwrite=True)
