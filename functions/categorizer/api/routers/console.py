"""The web console: its static page (strict security headers), its public config, and the read-only routes
only the page needs (model report images, promotion history, an ops summary).

The page signs people in against Cognito directly (the password never reaches this API) and then calls the
/v1 routes with the token in memory, like any other client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from categorizer.api.deps import ClassifierDep, ClassifyCaller, ConsoleServiceDep
from categorizer.api.routers.files import ERRORS

STATIC_DIR = Path(__file__).resolve().parents[2] / "console"
# The only files served under /console/: name -> media type. Nothing else is reachable (no path joins).
ASSETS = {"app.js": "text/javascript; charset=utf-8", "review.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
REPORT_IMAGES = ("confusion.png", "reliability.png")

router = APIRouter(include_in_schema=False)
PAGE = "/console"
# What API Gateway needs in front of the page routes below: a REST API routes `/console/` to the `/console`
# resource (keeping the slash in the event's path), and `{asset}` covers config.json and the static files.
GATEWAY_PAGE_ROUTES = (("GET", PAGE), ("GET", f"{PAGE}/{{asset}}"))
api_router = APIRouter(tags=["console"])


@router.get(PAGE)
async def console_redirect() -> RedirectResponse:
    return RedirectResponse("console/", status_code=308)  # relative: keeps an API Gateway stage prefix


@router.get(f"{PAGE}/")
async def console_page(console: ConsoleServiceDep) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={**console.security_headers(), "Cache-Control": "no-store"})


@router.get(f"{PAGE}/config.json")
async def console_config(console: ConsoleServiceDep) -> JSONResponse:
    return JSONResponse(console.page_config(), headers={**console.security_headers(), "Cache-Control": "no-store"})


@router.get(f"{PAGE}/{{name}}")
async def console_asset(name: str, console: ConsoleServiceDep) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "no such console asset")
    return FileResponse(STATIC_DIR / name, media_type=ASSETS[name],
                        headers={**console.security_headers(), "Cache-Control": "no-cache"})


# ---------------------------------------------------------------------------------------------- model report
def _report_metrics(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / "report" / "metrics.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


@api_router.get("/model/report", summary="The serving model's evaluation report: per-class scores, calibration",
                responses=ERRORS)
async def model_report(caller: ClassifyCaller, classifier: ClassifierDep) -> dict[str, Any]:
    bundle = classifier.bundle
    report = _report_metrics(bundle.path)
    per_class = report.get("per_class") or {}
    return {
        "model_version": classifier.version,
        "metrics": {k: report[k] for k in ("n", "accuracy", "macro_f1", "macro_precision", "macro_recall", "ece")
                    if k in report} or bundle.metrics,
        "review": report.get("review"),
        "per_class": [{"label": label, **scores} for label, scores in sorted(per_class.items())
                      if isinstance(scores, dict)],
        "calibration": report.get("calibration") or [],
        "images": [name for name in REPORT_IMAGES if (bundle.path / "report" / name).is_file()],
    }


@api_router.get("/model/report/{name}", summary="A plot from the serving model's report (PNG)",
                responses={**ERRORS, 404: {"description": "This bundle has no such plot"}},
                response_class=FileResponse)
async def model_report_image(name: str, caller: ClassifyCaller, classifier: ClassifierDep) -> FileResponse:
    if name not in REPORT_IMAGES:
        raise HTTPException(404, f"no such plot; available: {', '.join(REPORT_IMAGES)}")
    path = classifier.bundle.path / "report" / name
    if not path.is_file():
        raise HTTPException(404, "this model bundle has no such plot")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=300",
                                                               "X-Content-Type-Options": "nosniff"})


@api_router.get("/model/history", summary="Registered models and every promotion decision (newest first)",
                responses=ERRORS)
async def model_history(caller: ClassifyCaller, console: ConsoleServiceDep) -> dict[str, Any]:
    return console.model_history()


# ---------------------------------------------------------------------------------------------- ops
@api_router.get("/ops", summary="What this deployment can tell about its health, and what it cannot",
                responses=ERRORS)
async def ops_summary(caller: ClassifyCaller, console: ConsoleServiceDep) -> dict[str, Any]:
    return console.ops_summary(caller.subject)
