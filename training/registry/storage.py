"""Where artifacts live: a local directory by default (RECSVC_ARTIFACT_DIR), S3-compatible object storage
when RECSVC_ARTIFACT_STORE is `s3://bucket/prefix`.

The API is the same for both: training writes a version's files into `version_dir` and calls `save`, which
returns the version's `artifact_uri`; every reader asks `local_path(artifact_uri)` for a local folder.
With S3, `save` uploads the folder (a manifest of sizes and SHA-256 digests goes last, so a version
without its manifest is an unfinished upload) and `local_path` materialises the version in a per-machine
cache (RECSVC_ARTIFACT_CACHE_DIR): downloaded into a temporary folder, every file checked against the
manifest, then renamed into place in one step, so a reader never sees half a version and a wiped cache
is simply downloaded again. Files a serving process adds to its copy later (the FAISS index, item
snapshots) can be sent up with `publish` so other machines need not rebuild them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

log = logging.getLogger(__name__)
MANIFEST = "_artifacts.json"  # the S3 manifest: {"files": {relative path: {"size", "sha256"}}, "signature"}
# The manifest's digests sit in the same bucket as the files they describe, so whoever can write to the
# bucket could replace a file and its digest together; and the files (a FAISS index, numpy arrays, torch
# weights) are parsed by native code. So the manifest is signed: HMAC-SHA256 with the service's key
# (RECSVC_ARTIFACT_SIGNING_KEY) over its files and the version's place in the store, and a manifest whose
# signature no configured key produced is refused before anything is downloaded. Binding the place stops
# a signed manifest of one version (another tenant's) from being copied beside another.
_SIGNATURE_SCHEME = "hmac-sha256:"


class ArtifactError(Exception):
    """A version's artifacts cannot be read: missing, corrupted or the store unreachable."""


class ArtifactMissing(ArtifactError):
    pass


class ArtifactCorrupted(ArtifactError):
    pass


# --- locations ----------------------------------------------------------------------------------------------


def version_dir(tenant_id: int, version_id: int) -> Path:
    """The folder training writes a version into (on the training machine)."""
    return Path(settings.RECSVC_ARTIFACT_DIR) / str(tenant_id) / str(version_id)


def uri_for(path: Path) -> str:
    return f"file://{path.resolve()}"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// location: {uri!r}")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return str(PurePosixPath(self.prefix, *parts)) if self.prefix else str(PurePosixPath(*parts))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"


def _store() -> S3Location | None:
    uri = getattr(settings, "RECSVC_ARTIFACT_STORE", None)
    return S3Location.parse(uri) if uri else None


def _version_location(store: S3Location, tenant_id: int, version_id: int) -> S3Location:
    return S3Location(store.bucket, store.key(str(tenant_id), str(version_id)))


def _client():
    import boto3  # only processes configured for S3 pay for the import
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.RECSVC_ARTIFACT_S3_ENDPOINT_URL,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120),
    )


def _cache_dir(location: S3Location) -> Path:
    return Path(settings.RECSVC_ARTIFACT_CACHE_DIR) / location.bucket / location.prefix


# --- the API ------------------------------------------------------------------------------------------------


def save(tenant_id: int, version_id: int, folder: Path) -> str:
    """Store the version written into `folder` (its `version_dir`) and return its artifact URI."""
    store = _store()
    if store is None:
        return uri_for(folder)
    location = _version_location(store, tenant_id, version_id)
    _upload(folder, location)
    # Keep this machine's copy as its cache entry: the validation that follows reads it without a download.
    # A retried run re-saves its version: the copy of the earlier attempt goes first.
    shutil.rmtree(_cache_dir(location), ignore_errors=True)
    _install(folder, _cache_dir(location))
    return location.uri


def local_path(artifact_uri: str) -> Path:
    """A local folder holding the version's files (downloaded and verified first for s3:// URIs)."""
    if artifact_uri.startswith("file://"):
        return Path(artifact_uri.removeprefix("file://"))
    if artifact_uri.startswith("s3://"):
        location = S3Location.parse(artifact_uri)
        target = _cache_dir(location)
        if not target.is_dir():
            _download(location, target)
        return target
    raise ValueError(f"unsupported artifact location {artifact_uri!r}")


def publish(artifact_uri: str, names: list[str]) -> None:
    """Send files a process added to its copy of a version (e.g. the serving index) to the store, so other
    machines download them instead of rebuilding them. No-op for local artifacts."""
    if not artifact_uri.startswith("s3://"):
        return
    location = S3Location.parse(artifact_uri)
    folder = _cache_dir(location)
    client = _client()
    manifest = _read_manifest(client, location)
    for name in names:
        path = folder / name
        client.upload_file(str(path), location.bucket, location.key(name))
        manifest[name] = _describe(path)
    _write_manifest(client, location, manifest)


def discard(tenant_id: int, version_id: int) -> None:
    """Delete a version's artifacts (a failed or abandoned run): local folder, cache copy and stored objects.
    Best effort for the object store: a failure is logged, never raised (callers are cleaning up)."""
    shutil.rmtree(version_dir(tenant_id, version_id), ignore_errors=True)
    store = _store()
    if store is None:
        return
    location = _version_location(store, tenant_id, version_id)
    shutil.rmtree(_cache_dir(location), ignore_errors=True)
    try:
        client = _client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket,
                                                                     Prefix=location.key("")):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=location.bucket, Delete={"Objects": keys, "Quiet": True})
    except Exception:
        log.exception("could not delete the stored artifacts at %s", location.uri)


# --- S3 transfer ----------------------------------------------------------------------------------------------


def _describe(path: Path) -> dict:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _upload(folder: Path, location: S3Location) -> None:
    client = _client()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {}
    for path in files:
        name = path.relative_to(folder).as_posix()
        manifest[name] = _describe(path)
        client.upload_file(str(path), location.bucket, location.key(name))
    _write_manifest(client, location, manifest)  # last: its presence says the upload finished


def _signed_text(location: S3Location, files: dict) -> bytes:
    version = "/".join(PurePosixPath(location.prefix).parts[-2:])  # "<tenant>/<version>"
    return json.dumps({"files": files, "version": version}, sort_keys=True, separators=(",", ":")).encode()


def _signature(key: str, location: S3Location, files: dict) -> str:
    return _SIGNATURE_SCHEME + hmac.new(key.encode(), _signed_text(location, files), hashlib.sha256).hexdigest()


def sign_manifest(location: S3Location, files: dict) -> str:
    """The signature a manifest of `files` at `location` carries (the first configured key signs)."""
    return _signature(settings.RECSVC_ARTIFACT_SIGNING_KEYS[0], location, files)


def signature_matches(location: S3Location, files: dict, signature: object) -> bool:
    """Whether any configured key (rotation: old keys still verify) produced `signature`."""
    if not isinstance(signature, str):
        return False
    keys = settings.RECSVC_ARTIFACT_SIGNING_KEYS
    return any(hmac.compare_digest(_signature(key, location, files), signature) for key in keys)


def _write_manifest(client, location: S3Location, files: dict) -> None:
    body = json.dumps({"files": files, "signature": sign_manifest(location, files)}, indent=1, sort_keys=True).encode()
    client.put_object(Bucket=location.bucket, Key=location.key(MANIFEST), Body=body,
                      ContentType="application/json")


def _read_manifest(client, location: S3Location) -> dict:
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=location.bucket, Key=location.key(MANIFEST))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            raise ArtifactMissing(
                f"{location.uri}{MANIFEST} not found: the version's upload never finished or was deleted"
            ) from None
        raise ArtifactError(f"cannot read {location.uri}{MANIFEST}: {exc}") from exc
    try:
        document = json.loads(body)
        files = dict(document["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactCorrupted(f"{location.uri}{MANIFEST} is not a valid manifest: {exc}") from None
    if not signature_matches(location, files, document.get("signature")):
        raise ArtifactCorrupted(
            f"{location.uri}{MANIFEST} is not signed with this service's key (RECSVC_ARTIFACT_SIGNING_KEY):"
            " refusing the version's files"
        )
    return files


def _download(location: S3Location, target: Path) -> None:
    from botocore.exceptions import ClientError

    client = _client()
    manifest = _read_manifest(client, location)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, expected in sorted(manifest.items()):
            path = staging / name
            if ".." in PurePosixPath(name).parts or PurePosixPath(name).is_absolute():
                raise ArtifactCorrupted(f"{location.uri}{MANIFEST} names a file outside the version: {name!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                client.download_file(location.bucket, location.key(name), str(path))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise ArtifactMissing(f"{location.uri}{name} is missing (listed in the manifest)") from None
                raise ArtifactError(f"cannot download {location.uri}{name}: {exc}") from exc
            actual = _describe(path)
            if actual != expected:
                raise ArtifactCorrupted(
                    f"{location.uri}{name} does not match the manifest: {actual['size']} bytes, sha256 "
                    f"{actual['sha256'][:12]}..., expected {expected['size']} bytes, "
                    f"sha256 {expected['sha256'][:12]}..."
                )
        _install(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(source: Path, target: Path) -> None:
    """Move a complete folder to `target` in one rename; if another process got there first, keep theirs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.stat().st_dev != target.parent.stat().st_dev:  # a rename cannot cross file systems: copy first
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        shutil.copytree(source, staging, dirs_exist_ok=True)
        shutil.rmtree(source, ignore_errors=True)
        source = staging
    try:
        os.rename(source, target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(source, ignore_errors=True)  # an identical copy is already in place
