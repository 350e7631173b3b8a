"""Talk to a running stage, local or deployed, through its outputs file (`cdk deploy --outputs-file` shape)."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from categorizer_cli.local.config import LocalConfig


class StackError(RuntimeError):
    """The stage cannot be reached or answered with an error."""


def default_outputs_file() -> Path:
    return LocalConfig.from_env().outputs_file


@dataclass
class Stack:
    outputs: dict[str, str]

    @classmethod
    def load(cls, path: Path | None = None) -> Stack:
        path = path or default_outputs_file()
        if not path.is_file():
            raise StackError(f"no stack outputs at {path}: start the local stack with `make up` "
                             "(or pass --outputs FILE from `cdk deploy --outputs-file`)")
        data = json.loads(path.read_text())
        (outputs,) = data.values() if len(data) == 1 else (data,)
        return cls(outputs)

    def get(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise StackError(f"the stack outputs have no {key}") from None

    def aws(self, service: str):
        endpoint = self.outputs.get("AwsEndpointUrl")
        if endpoint:  # the local emulator
            return boto3.client(service, endpoint_url=endpoint, region_name=self.get("Region"),
                                aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
        return boto3.client(service, region_name=self.get("Region"))

    # ------------------------------------------------------------------ tokens
    def user_token(self, username: str | None = None, password: str | None = None) -> str:
        username = username or os.environ.get("CATEGORIZER_USERNAME") or self.get("DemoUsername")
        password = password or os.environ.get("CATEGORIZER_PASSWORD") or self.get("DemoPassword")
        answer = self.aws("cognito-idp").initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH", ClientId=self.get("UserClientId"),
            AuthParameters={"USERNAME": username, "PASSWORD": password})
        return answer["AuthenticationResult"]["AccessToken"]

    def machine_token(self, client_secret: str | None = None, scopes: str = "") -> str:
        secret = client_secret or os.environ.get("CATEGORIZER_CLIENT_SECRET") or self.get("MachineClientSecret")
        basic = base64.b64encode(f"{self.get('MachineClientId')}:{secret}".encode()).decode()
        form = {"grant_type": "client_credentials", **({"scope": scopes} if scopes else {})}
        status, body = _http("POST", self.get("TokenUrl"), data=urllib.parse.urlencode(form).encode(),
                             headers={"Authorization": f"Basic {basic}",
                                      "Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise StackError(f"token endpoint answered {status}: {body}")
        return body["access_token"]

    def token(self, *, machine: bool = False) -> str:
        return self.machine_token() if machine else self.user_token()

    # ------------------------------------------------------------------ API
    def api(self, method: str, path: str, *, token: str | None = None, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        return _http(method, self.get("ApiUrl").rstrip("/") + path, data=data, headers=all_headers)


def _http(method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 30) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise StackError(f"refusing a non-HTTP URL: {url}")
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked above
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    except urllib.error.URLError as error:
        raise StackError(f"{url} unreachable: {error.reason}") from error
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode("utf-8", "replace")


def wait_for(predicate, *, timeout: float, interval: float = 0.5, on_tick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if on_tick:
            on_tick()
        time.sleep(interval)
    return None
