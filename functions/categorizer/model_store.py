"""Resolve, load and hot-swap the serving model, once per container.

Locally (MODEL_DIR) the bundle is loaded once. In AWS the champion version is read from an SSM parameter
through Powertools Parameters (cached for `max_age`); when it changes, the new bundle is downloaded to /tmp,
verified by hash, loaded, and swapped in atomically. Requests in flight keep the classifier they started
with; a download or verification failure leaves the working model in place.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
from aws_lambda_powertools.utilities import parameters

from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.contract import ModelSource
from categorizer.engine import BundleError, Classifier, load_bundle
from categorizer.engine.bundle import extract_bundle_stream
from categorizer.observability import logger
from categorizer.wiring import Lazy


class ModelUnavailableError(Exception):
    """No model could be loaded (nothing configured, or the first load failed)."""


@dataclass(frozen=True)
class ChampionPointer:
    version: str
    key: str  # S3 key of the model.tar.gz in the model bucket

    @classmethod
    def parse(cls, raw: str) -> ChampionPointer:
        data = json.loads(raw)
        return cls(version=str(data["version"]), key=str(data["key"]))

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "key": self.key})


class ModelStore:
    """One per container. Its SSM and S3 clients are built on first use (a local bundle needs neither), from one
    boto3 session: a second session parses botocore's shared data files again and registers its handlers
    again, ~45 ms of a cold start (bench/results/*-api-cold-start.md)."""

    def __init__(self, settings: ModelSource, *, bucket: Callable[[], ModelBucket] | None = None,
                 session: Lazy[boto3.Session] | None = None) -> None:
        self._settings = settings
        session = session or Lazy(boto3.Session)  # the function's one session, when it has one (api/services.py)
        self._bucket = Lazy(bucket or (lambda: ModelBucket(str(settings.model_bucket),
                                                           client=session.get().client("s3"))))
        # Its own provider, not Powertools' module-wide one: the pointer's `max_age` cache is this store's.
        self._pointers = Lazy(lambda: parameters.SSMProvider(boto3_session=session.get()))
        self._lock = threading.Lock()
        self._classifier: Classifier | None = None

    def get(self) -> Classifier:
        if self._settings.model_dir:
            return self._get_local()
        return self._get_champion()

    def _get_local(self) -> Classifier:
        if self._classifier is None:
            with self._lock:
                if self._classifier is None:
                    self._classifier = Classifier.from_path(
                        self._settings.model_dir, threads=self._settings.onnx_threads,
                        out_of_scope_threshold=self._settings.out_of_scope_threshold)
                    logger.info("model loaded", extra={"model_version": self._classifier.version})
        return self._classifier

    def _get_champion(self) -> Classifier:
        settings = self._settings
        if not (settings.model_bucket and settings.champion_parameter):
            raise ModelUnavailableError("no model configured: set MODEL_DIR or MODEL_BUCKET + CHAMPION_PARAMETER")
        try:
            raw = self._pointers.get().get(settings.champion_parameter, max_age=settings.model_max_age_seconds)
            pointer = ChampionPointer.parse(raw)
        except Exception as exc:  # SSM outage or a bad pointer: keep serving what we have
            if self._classifier is not None:
                logger.warning("champion pointer unreadable; keeping current model", extra={"error": str(exc)})
                return self._classifier
            raise ModelUnavailableError(f"champion pointer unreadable: {exc}") from exc
        current = self._classifier
        if current is not None and current.version == pointer.version:
            return current
        with self._lock:
            if self._classifier is not None and self._classifier.version == pointer.version:
                return self._classifier
            try:
                loaded = self._load(pointer)
            except (BundleError, OSError) as exc:
                logger.error("candidate model refused", extra={"version": pointer.version, "error": str(exc)})
                if self._classifier is not None:
                    return self._classifier
                raise ModelUnavailableError(f"model {pointer.version} cannot be loaded: {exc}") from exc
            previous, self._classifier = self._classifier, loaded
            logger.info("model swapped", extra={"model_version": loaded.version,
                                                "previous_version": previous.version if previous else None})
            return loaded

    def _load(self, pointer: ChampionPointer) -> Classifier:
        cache = Path(self._settings.model_cache_dir)
        target = cache / pointer.version
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        body = self._bucket.get().open(pointer.key)
        try:
            bundle_dir = extract_bundle_stream(body, target / "bundle", source=f"s3 key {pointer.key}")
        finally:
            body.close()
        bundle = load_bundle(bundle_dir)
        if bundle.version != pointer.version:
            raise BundleError(f"bundle says version {bundle.version}, pointer says {pointer.version}")
        # Free /tmp from older versions (Lambda's /tmp is small); keep the one being replaced until swapped.
        for old in cache.iterdir():
            if old.name not in {pointer.version, getattr(self._classifier, "version", None)}:
                shutil.rmtree(old, ignore_errors=True)
        return Classifier(bundle, threads=self._settings.onnx_threads,
                          out_of_scope_threshold=self._settings.out_of_scope_threshold)

