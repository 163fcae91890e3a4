"""Artifact manifests in the object store are signed (HMAC-SHA256 with RECSVC_ARTIFACT_SIGNING_KEY): whoever
can write to the bucket cannot swap a file and its digest together, nor copy another version's signed
manifest beside it. And the item snapshot pointer cannot send numpy to a file outside the version."""

# ruff: noqa: F811 (the S3 fixtures are imported from test_storage_s3 and named as test parameters)

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tests.training.test_storage_s3 import keys, read_all, s3, s3_endpoint, write_version  # noqa: F401 (fixtures)
from training import artifacts
from training.registry import storage


def _manifest(s3, tenant_id: int, version_id: int) -> dict:
    key = f"models/{tenant_id}/{version_id}/{storage.MANIFEST}"
    return json.loads(s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())


def _put_manifest(s3, tenant_id: int, version_id: int, document: dict) -> None:
    key = f"models/{tenant_id}/{version_id}/{storage.MANIFEST}"
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=json.dumps(document).encode())


def _wipe_cache(s3) -> None:
    storage.shutil.rmtree(s3.cache, ignore_errors=True)


def test_the_manifest_is_signed_and_a_fresh_machine_loads_it(s3):
    files = write_version(3, 41)
    uri = storage.save(3, 41, storage.version_dir(3, 41))
    assert _manifest(s3, 3, 41)["signature"].startswith("hmac-sha256:")
    _wipe_cache(s3)
    assert read_all(storage.local_path(uri)) == files


def test_a_file_swapped_with_its_digest_in_the_store_is_refused(s3):
    write_version(3, 42)
    uri = storage.save(3, 42, storage.version_dir(3, 42))
    # Someone with write access to the bucket replaces the index and the digest the manifest lists for it.
    evil = b"not the model" * 100
    s3.client.put_object(Bucket=s3.bucket, Key="models/3/42/item_embeddings.npy", Body=evil)
    document = _manifest(s3, 3, 42)
    document["files"]["item_embeddings.npy"] = {"size": len(evil), "sha256": hashlib.sha256(evil).hexdigest()}
    _put_manifest(s3, 3, 42, document)
    _wipe_cache(s3)
    with pytest.raises(storage.ArtifactCorrupted, match="not signed with this service's key"):
        storage.local_path(uri)
    assert not (s3.cache / s3.bucket / "models/3/42").exists()  # nothing installed


def test_an_unsigned_or_moved_manifest_is_refused(s3):
    write_version(3, 43)
    storage.save(3, 43, storage.version_dir(3, 43))
    write_version(4, 44)
    storage.save(4, 44, storage.version_dir(4, 44))
    _wipe_cache(s3)
    # Tenant 4's genuinely signed manifest copied over tenant 3's version (with its files).
    for key in keys(s3):
        if key.startswith("models/4/44/"):
            s3.client.copy_object(Bucket=s3.bucket, Key=key.replace("/4/44/", "/3/43/"),
                                  CopySource={"Bucket": s3.bucket, "Key": key})
    with pytest.raises(storage.ArtifactCorrupted, match="not signed"):
        storage.local_path(f"s3://{s3.bucket}/models/3/43/")
    # A manifest without a signature (written before signing, or by hand).
    document = _manifest(s3, 4, 44)
    del document["signature"]
    _put_manifest(s3, 4, 44, document)
    with pytest.raises(storage.ArtifactCorrupted, match="not signed"):
        storage.local_path(f"s3://{s3.bucket}/models/4/44/")


def test_keys_rotate_the_first_signs_and_all_verify(s3, settings):
    settings.RECSVC_ARTIFACT_SIGNING_KEYS = ["old-key"]
    files = write_version(3, 45)
    uri = storage.save(3, 45, storage.version_dir(3, 45))
    settings.RECSVC_ARTIFACT_SIGNING_KEYS = ["new-key", "old-key"]
    _wipe_cache(s3)
    assert read_all(storage.local_path(uri)) == files
    settings.RECSVC_ARTIFACT_SIGNING_KEYS = ["new-key"]
    _wipe_cache(s3)
    with pytest.raises(storage.ArtifactCorrupted):
        storage.local_path(uri)


def test_published_files_are_signed_too(s3):
    write_version(3, 46)
    uri = storage.save(3, 46, storage.version_dir(3, 46))
    (storage.local_path(uri) / "index.faiss").write_bytes(b"faiss bytes")
    storage.publish(uri, ["index.faiss"])
    _wipe_cache(s3)
    assert (storage.local_path(uri) / "index.faiss").read_bytes() == b"faiss bytes"


@pytest.mark.parametrize("name", ["../../secret.npy", "/etc/secret.npy", "items-1-0123456789ab.npy/../x.npy",
                                  "x.npy", 7, None])
def test_a_snapshot_pointer_naming_another_file_is_refused(tmp_path, name):
    folder = tmp_path / "3" / "41"
    (folder / artifacts.SNAPSHOT_DIR).mkdir(parents=True)
    np.save(tmp_path / "secret.npy", np.zeros((2, len(artifacts.ITEM_FEATURES)), dtype=np.float32))
    pointer = {"file": name, "as_of": 1, "columns": list(artifacts.ITEM_FEATURES), "n_items": 2, "n_events": 0,
               "global_mean_weight": 0.0}
    artifacts.snapshot_pointer(folder).write_text(json.dumps(pointer))
    with pytest.raises(ValueError, match="not a snapshot file"):
        artifacts.load_item_snapshot(folder)


def test_a_snapshot_the_service_wrote_loads(tmp_path):
    snapshot = artifacts.ItemSnapshot(np.ones((3, len(artifacts.ITEM_FEATURES)), dtype=np.float32), 5, 1.5, 9)
    path = artifacts.save_item_snapshot(tmp_path, snapshot)
    assert artifacts.snapshot_file(tmp_path, artifacts.read_snapshot_pointer(tmp_path)) == path
    assert artifacts.load_item_snapshot(tmp_path).n_items == 3
