"""Local state that survives a restart: the emulator keeps everything in memory, so we snapshot it to disk.

S3 objects (with metadata), DynamoDB items and the stage's SSM parameters are written under
.local/state/ (objects only when their ETag changed) and put back into a fresh emulator before the
resources are provisioned, so restored ingest files do not trigger notifications again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from categorizer_cli.local.provision import client
from infra import config as infra


class StateStore:
    def __init__(self, directory: Path, endpoint: str, names: infra.ResourceNames) -> None:
        self.directory = directory
        self.endpoint = endpoint
        self.names = names
        self.buckets = (names.model_bucket, names.ingest_bucket, names.results_bucket)
        self.tables = tuple(t.name for t in infra.table_specs(names))
        self._saved_etags: dict[str, str] = {}

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._snapshot_s3()
        self._snapshot_dynamodb()
        self._snapshot_ssm()

    def _object_path(self, bucket: str, key: str) -> Path:
        # Hashed file names: S3 keys may hold anything (`../`, unicode, very long names).
        return self.directory / "s3" / bucket / hashlib.sha256(key.encode()).hexdigest()

    def _snapshot_s3(self) -> None:
        s3 = client("s3", self.endpoint)
        index: dict[str, list[dict]] = {}
        for bucket in self.buckets:
            entries = index.setdefault(bucket, [])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    key, etag = item["Key"], item["ETag"]
                    path = self._object_path(bucket, key)
                    if self._saved_etags.get(f"{bucket}/{key}") != etag or not path.exists():
                        head = s3.head_object(Bucket=bucket, Key=key)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(bucket, key, str(path))
                        self._saved_etags[f"{bucket}/{key}"] = etag
                        path.with_suffix(".meta.json").write_text(json.dumps(
                            {"metadata": head.get("Metadata", {}), "content_type": head.get("ContentType")}))
                    entries.append({"key": key, "file": path.name})
        _write_json(self.directory / "s3-index.json", index)

    def _snapshot_dynamodb(self) -> None:
        dynamodb = client("dynamodb", self.endpoint)
        for table in self.tables:
            items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table)
                     for item in page["Items"]]
            _write_json(self.directory / "dynamodb" / f"{table}.json", items)

    def _snapshot_ssm(self) -> None:
        ssm = client("ssm", self.endpoint)
        prefix = self.names.champion_parameter.rsplit("/", 1)[0]
        parameters = [{"Name": p["Name"], "Value": p["Value"], "Type": p["Type"]}
                      for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=True)
                      for p in page["Parameters"]]
        _write_json(self.directory / "ssm.json", parameters)

    # ------------------------------------------------------------------ restore
    def restore(self) -> int:
        """Put a snapshot back; returns the number of S3 objects restored (0 when there is no snapshot)."""
        index_file = self.directory / "s3-index.json"
        if not index_file.exists():
            return 0
        s3 = client("s3", self.endpoint)
        restored = 0
        for bucket, entries in json.loads(index_file.read_text()).items():
            s3.create_bucket(Bucket=bucket)
            for entry in entries:
                path = self.directory / "s3" / bucket / entry["file"]
                meta_file = path.with_suffix(".meta.json")
                meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
                extra = {"Metadata": meta.get("metadata", {})}
                if meta.get("content_type"):
                    extra["ContentType"] = meta["content_type"]
                s3.upload_file(str(path), bucket, entry["key"], ExtraArgs=extra)
                restored += 1
                self._saved_etags[f"{bucket}/{entry['key']}"] = s3.head_object(Bucket=bucket, Key=entry["key"])["ETag"]
        dynamodb = client("dynamodb", self.endpoint)
        for spec in infra.table_specs(self.names):
            items_file = self.directory / "dynamodb" / f"{spec.name}.json"
            if spec.name not in dynamodb.list_tables()["TableNames"]:
                dynamodb.create_table(**spec.create_table_kwargs())
            if items_file.exists():
                for item in json.loads(items_file.read_text()):
                    dynamodb.put_item(TableName=spec.name, Item=item)
        ssm = client("ssm", self.endpoint)
        ssm_file = self.directory / "ssm.json"
        if ssm_file.exists():
            for p in json.loads(ssm_file.read_text()):
                ssm.put_parameter(Name=p["Name"], Value=p["Value"], Type=p["Type"], Overwrite=True)
        return restored

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_json(path: Path, value) -> None:
    """Write then rename, so a crash mid-snapshot never leaves a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)
