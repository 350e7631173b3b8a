"""The web console: its static page (strict security headers), its public config, and the read-only routes
only the page needs (model report images, promotion history, an ops summary).

The page signs people in against Cognito directly (the password never reaches this API) and then calls the
/v1 routes with the token in memory, like any other client.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.adapters.user_files import UserFiles
from categorizer.api.deps import ClassifierDep, ClassifyCaller, SettingsDep, UserFilesDep
from categorizer.api.routers.files import ERRORS, list_files
from categorizer.contract import ApiSettings
from categorizer.observability import logger

STATIC_DIR = Path(__file__).resolve().parents[2] / "console"
# The only files served under /console/: name -> media type. Nothing else is reachable (no path joins).
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
REPORT_IMAGES = ("confusion.png", "reliability.png")

router = APIRouter(include_in_schema=False)
PAGE = "/console"
# What API Gateway needs in front of the page routes below: a REST API routes `/console/` to the `/console`
# resource (keeping the slash in the event's path), and `{asset}` covers config.json and the static files.
GATEWAY_PAGE_ROUTES = (("GET", PAGE), ("GET", f"{PAGE}/{{asset}}"))
api_router = APIRouter(tags=["console"])


def _origin(url: str) -> str | None:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme in {"http", "https"} and parsed.netloc else None


def _upload_origin(files: UserFiles, bucket: str) -> str | None:
    """Where presigned POSTs go (signing is local: no AWS call)."""
    form = files.presigned_upload(bucket, "probe", max_bytes=1, expires_in=1)
    return _origin(form["url"])


def content_security_policy(settings: ApiSettings, files: UserFiles) -> str:
    connect = ["'self'", *sorted({o for o in (_origin(settings.cognito_idp_endpoint),
                                              _upload_origin(files, settings.ingest_bucket)) if o})]
    return "; ".join((
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob:",
        f"connect-src {' '.join(connect)}", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'",
        "object-src 'none'",
    ))


def security_headers(settings: ApiSettings, files: UserFiles) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings, files),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


@router.get(PAGE)
async def console_redirect() -> RedirectResponse:
    return RedirectResponse("console/", status_code=308)  # relative: keeps an API Gateway stage prefix


@router.get(f"{PAGE}/")
async def console_page(settings: SettingsDep, files: UserFilesDep) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={**security_headers(settings, files), "Cache-Control": "no-store"})


@router.get(f"{PAGE}/config.json")
async def console_config(settings: SettingsDep, files: UserFilesDep) -> JSONResponse:
    """What the page needs to sign people in; all of it is public (a pool id and a client id are not secrets)."""
    body = {"region": settings.region, "user_pool_id": settings.identity.user_pool_id,
            "client_id": settings.console_client_id, "cognito_endpoint": settings.cognito_idp_endpoint,
            "stage": settings.stage}
    return JSONResponse(body, headers={**security_headers(settings, files), "Cache-Control": "no-store"})


@router.get(f"{PAGE}/{{name}}")
async def console_asset(name: str, settings: SettingsDep, files: UserFilesDep) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "no such console asset")
    return FileResponse(STATIC_DIR / name, media_type=ASSETS[name],
                        headers={**security_headers(settings, files), "Cache-Control": "no-cache"})


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
async def model_history(caller: ClassifyCaller, settings: SettingsDep) -> dict[str, Any]:
    from categorizer.adapters.champion_parameter import ChampionParameter
    from categorizer.adapters.model_registry_bucket import ModelBucket
    from categorizer.registry.store import ModelRegistry, RegistryError

    source = settings.model
    if not (source.model_bucket and source.champion_parameter):
        return {"available": False, "reason": "this deployment serves a local bundle: no registry",
                "champion": None, "models": [], "decisions": []}
    try:
        registry = ModelRegistry(ModelBucket(source.model_bucket), ChampionParameter(source.champion_parameter),
                                 decisions_prefix=settings.decisions_prefix)
        decisions = registry.decisions()
        models = registry.list_models()
        champion = registry.champion_version()
    except RegistryError as exc:
        return {"available": False, "reason": str(exc), "champion": None, "models": [], "decisions": []}
    return {
        "available": True,
        "champion": champion,
        "models": [{"version": m.version, "registered_at": m.registered_at, "metrics": m.metrics,
                    "source": m.source} for m in reversed(models)],
        "decisions": [d.to_json() for d in reversed(decisions)][:100],
    }


# ---------------------------------------------------------------------------------------------- ops
@api_router.get("/ops", summary="What this deployment can tell about its health, and what it cannot",
                responses=ERRORS)
async def ops_summary(caller: ClassifyCaller, settings: SettingsDep, user_files: UserFilesDep) -> dict[str, Any]:
    files = (await list_files(caller, settings, user_files)).files
    finished = [f for f in files if f.status != "processing"]
    rows = sum(f.rows_classified or 0 for f in finished)
    review = sum(f.needs_review or 0 for f in finished)
    by_status = Counter(f.status for f in files)
    return {
        "files": {
            "scope": "your recent files",
            "by_status": dict(by_status),
            "rows_classified": rows,
            "low_confidence_share": (review / rows) if rows else None,
            "failed": [{"upload_id": f.upload_id, "name": f.name, "reason": f.failure_reason,
                        "message": f.failure_message} for f in files if f.status == "failed"],
        },
        "feedback": _feedback_summary(settings),
        "not_available": [
            {"what": "predictions per hour, low-confidence share of API predictions",
             "why": "emitted as CloudWatch metrics (Powertools EMF); this API does not read CloudWatch"},
            {"what": "alarm states", "why": "alarms live in CloudWatch; see the AWS console or `categorizer status`"},
        ],
    }


def _feedback_summary(settings: ApiSettings) -> dict[str, Any]:
    try:
        records = FeedbackScan(settings.feedback_table).all_records()
    except Exception as exc:  # a missing read grant must not break the ops page
        logger.warning("feedback summary unavailable", extra={"error": str(exc)})
        return {"available": False, "reason": "the feedback table cannot be read by this function"}
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    disagree = sum(1 for r in records if r.correct_label != r.predicted_label)
    return {
        "available": True,
        "total": len(records),
        "last_24h": sum(1 for r in records if r.created_at >= since),
        "disagreement_rate": (disagree / len(records)) if records else None,
        "top_corrections": [{"from": a, "to": b, "count": n} for (a, b), n in Counter(
            (r.predicted_label, r.correct_label) for r in records if r.correct_label != r.predicted_label
        ).most_common(5)],
    }
