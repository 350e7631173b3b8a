"""The API's paths: its version prefix, the classify route, and the API Gateway stage in a request's path.

Free of FastAPI and Starlette on purpose: the direct classify path (api/direct.py) routes with these before the
app is built, so a cold start whose first request is a classification never imports FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

API_PREFIX = "/v1"  # every documented route but the console page's
CLASSIFY_ROUTE = "/classify"  # within API_PREFIX
CLASSIFY_PATH = API_PREFIX + CLASSIFY_ROUTE


def stage_prefix(event: Mapping[str, Any]) -> str:
    """`/prod` when the client called `https://host/prod/v1/...` (execute-api URLs carry the stage)."""
    context = event.get("requestContext") or {}
    stage = context.get("stage")
    if not isinstance(stage, str) or not stage or stage == "$default":
        return ""
    prefix = f"/{stage}"
    if event.get("version") == "2.0":
        client_path = (context.get("http") or {}).get("path") or event.get("rawPath") or ""
    else:
        client_path = context.get("path") or ""
    return prefix if client_path == prefix or client_path.startswith(prefix + "/") else ""


def without_stage(scope: Mapping[str, Any]) -> tuple[str, str]:
    """(stage prefix, the path the app routes) of a Mangum HTTP scope: `/prod/v1/x` -> ("/prod", "/v1/x")."""
    event = scope.get("aws.event")
    prefix = stage_prefix(event) if isinstance(event, dict) else ""
    path = scope["path"]
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix):] or "/"
    return prefix, path
