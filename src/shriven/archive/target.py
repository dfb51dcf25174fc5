"""Where archives go: an S3 bucket and prefix (through boto3; any S3 API server with an endpoint
URL) or a local directory. Every put is verified against the SHA-256 of what was sent."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shriven.errors import ArchiveError, ConfigError
from shriven.files import atomic_write


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Destination(Protocol):
    name: str

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` and check that what is stored has its SHA-256; raise
        ArchiveError when either fails."""
        ...

    def get(self, key: str) -> bytes: ...

    def keys(self, under: str) -> list[str]:
        """Every key below ``under`` (a relative path such as ``ticks/``), sorted."""
        ...


@dataclass(frozen=True, slots=True)
class S3Credentials:
    """What boto3 is given; None each: boto3's own chain (AWS_* variables, ~/.aws, a role)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


class S3Destination:
    def __init__(self, bucket: str, prefix: str, credentials: S3Credentials) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.name = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = boto3.client(
            "s3",
            endpoint_url=credentials.endpoint_url,
            region_name=credentials.region or "us-east-1",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        want = base64.b64encode(hashlib.sha256(data).digest()).decode()
        full = self._key(key)
        try:
            # The server checks the body against ChecksumSHA256 on receipt...
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data, ChecksumSHA256=want)
            # ...and the stored object is checked again after the upload.
            head = self._client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
            stored = head.get("ChecksumSHA256")
            if stored is None:  # a server that keeps no checksum: read it back
                stored = base64.b64encode(hashlib.sha256(self.get(key)).digest()).decode()
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveError(f"upload of {self.name}/{key} failed: {_boto_reason(exc)}") from None
        if stored != want:
            raise ArchiveError(
                f"{self.name}/{key} does not have the checksum of what was sent after upload"
            )

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            return body.read()
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveError(f"cannot read {self.name}/{key}: {_boto_reason(exc)}") from None

    def keys(self, under: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        start = self._key(under)
        out: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    k = obj["Key"]
                    out.append(k[len(self.prefix) + 1 :] if self.prefix else k)
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveError(f"cannot list {self.name}/{under}: {_boto_reason(exc)}") from None
        return sorted(out)


def _boto_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".strip().rstrip(":")
    return str(exc)[:200]


class LocalDestination:
    """A directory (another disk, a mounted share): the same layout as in a bucket."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.name = str(self.root)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        try:
            atomic_write(path, data, mode=0o644)
            stored = path.read_bytes()
        except OSError as exc:
            raise ArchiveError(f"cannot write {path}: {exc.strerror}") from None
        if sha256(stored) != sha256(data):
            raise ArchiveError(f"{path} does not have the checksum of what was written")

    def get(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.root / key}: {exc.strerror}") from None

    def keys(self, under: str) -> list[str]:
        base = self.root / under
        if not base.is_dir():
            return []
        return sorted(os.path.relpath(p, self.root) for p in base.rglob("*") if p.is_file())


def open_destination(where: str, credentials: S3Credentials | None = None) -> Destination:
    """``s3://bucket/prefix`` or a directory path."""
    if where.startswith("s3://"):
        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"bad archive location {where!r}: give s3://BUCKET/PREFIX")
        return S3Destination(bucket, prefix, credentials or S3Credentials())
    if "://" in where:
        raise ConfigError(f"bad archive location {where!r}: give s3://BUCKET/PREFIX or a directory")
    return LocalDestination(Path(where))
