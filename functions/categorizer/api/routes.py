"""The API Gateway route list, derived from the app: the CDK construct builds one method per entry.

A route added to a FastAPI router reaches API Gateway without a second edit: the documented operations come
from the OpenAPI document (with the permission each needs, from its `Security` dependency's scope), the
document and its viewer from the app's own settings, and the console page from the console router's
`GATEWAY_PAGE_ROUTES`. A public route (no scope) must be given a reason where infra builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from categorizer.api.app import routed_app
from categorizer.api.routers import console


@dataclass(frozen=True)
class GatewayRoute:
    method: str
    path: str
    scopes: tuple[str, ...]  # OAuth scopes of the permission it needs; () = public
    body_schema: dict[str, Any] | None = None  # the JSON request body's schema (components resolved one level)


def gateway_routes(app: FastAPI | None = None) -> tuple[GatewayRoute, ...]:
    app = app or routed_app()
    document = app.openapi()
    components = document.get("components", {}).get("schemas", {})
    routes: list[GatewayRoute] = []
    all_scopes: set[str] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            scopes = tuple(sorted({scope for requirement in operation.get("security", [])
                                   for scopes in requirement.values() for scope in scopes}))
            all_scopes.update(scopes)
            routes.append(GatewayRoute(method.upper(), path, scopes, _body_schema(operation, components)))
    # The document and its viewer are served to any caller with some permission.
    for path in (app.openapi_url, app.docs_url):
        if path:
            routes.append(GatewayRoute("GET", path, tuple(sorted(all_scopes))))
    routes.extend(GatewayRoute(method, path, ()) for method, path in console.GATEWAY_PAGE_ROUTES)
    return tuple(routes)


def _body_schema(operation: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return None
    schema = content["schema"]
    ref = schema.get("$ref", "")
    return components[ref.rsplit("/", 1)[-1]] if ref.startswith("#/components/schemas/") else schema
