"""Where artifacts live: a local directory by default; any path-like store mounted at that location
(e.g. an S3 bucket through a FUSE mount or a shared volume) works the same way. Serving reads through
`local_path`, so a remote backend only has to materialise a version's folder there."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings


def version_dir(tenant_id: int, version_id: int) -> Path:
    return Path(settings.RECSVC_ARTIFACT_DIR) / str(tenant_id) / str(version_id)


def local_path(artifact_uri: str) -> Path:
    if not artifact_uri.startswith("file://"):
        raise ValueError(f"unsupported artifact location {artifact_uri!r}")
    return Path(artifact_uri.removeprefix("file://"))


def uri_for(path: Path) -> str:
    return f"file://{path.resolve()}"


def discard(tenant_id: int, version_id: int) -> None:
    shutil.rmtree(version_dir(tenant_id, version_id), ignore_errors=True)
