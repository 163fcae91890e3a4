"""Artifacts in S3-compatible object storage, against a real S3 HTTP endpoint on loopback (moto's
ThreadedMotoServer speaks the S3 REST API; boto3 talks to it over HTTP exactly as to AWS or MinIO)."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.factories import TenantFactory
from training.registry import storage

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "recsvc-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "recsvc-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"recsvc-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    settings.RECSVC_ARTIFACT_STORE = f"s3://{bucket}/models"
    settings.RECSVC_ARTIFACT_S3_ENDPOINT_URL = s3_endpoint
    settings.RECSVC_ARTIFACT_DIR = tmp_path / "work"
    settings.RECSVC_ARTIFACT_CACHE_DIR = tmp_path / "cache"
    return SimpleNamespace(client=client, bucket=bucket, cache=tmp_path / "cache")


def keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents", []))


def write_version(tenant_id: int, version_id: int) -> dict[str, bytes]:
    folder = storage.version_dir(tenant_id, version_id)
    files = {"item_embeddings.npy": np.random.default_rng(0).bytes(300_000), "ranker/ranker.pt": b"weights" * 10}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def read_all(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_save_uploads_and_a_wiped_cache_is_downloaded_again(s3):
    files = write_version(3, 41)
    uri = storage.save(3, 41, storage.version_dir(3, 41))
    assert uri == f"s3://{s3.bucket}/models/3/41/"
    names = ("_artifacts.json", "item_embeddings.npy", "ranker/ranker.pt")
    assert keys(s3) == [f"models/3/41/{name}" for name in names]
    # The training machine's copy became its cache entry (no download for the validation that follows).
    assert not storage.version_dir(3, 41).exists()
    assert read_all(storage.local_path(uri)) == files

    storage.shutil.rmtree(s3.cache)
    folder = storage.local_path(uri)
    assert folder.is_relative_to(s3.cache)
    assert read_all(folder) == files
    # A second reader finds the cached copy: it works without the store.
    s3.client.delete_object(Bucket=s3.bucket, Key="models/3/41/ranker/ranker.pt")
    assert storage.local_path(uri) == folder and read_all(folder) == files


def test_a_corrupted_object_fails_clearly_and_leaves_no_partial_copy(s3):
    write_version(3, 42)
    uri = storage.save(3, 42, storage.version_dir(3, 42))
    storage.shutil.rmtree(s3.cache)
    s3.client.put_object(Bucket=s3.bucket, Key="models/3/42/ranker/ranker.pt", Body=b"weightz" * 10)
    with pytest.raises(storage.ArtifactCorrupted, match=r"models/3/42/ranker/ranker\.pt does not match the manifest"):
        storage.local_path(uri)
    parent = s3.cache / s3.bucket / "models" / "3"
    assert list(parent.iterdir()) == []  # neither the version nor a staging folder


def test_a_missing_object_or_manifest_fails_clearly(s3):
    write_version(3, 43)
    uri = storage.save(3, 43, storage.version_dir(3, 43))
    storage.shutil.rmtree(s3.cache)
    s3.client.delete_object(Bucket=s3.bucket, Key="models/3/43/item_embeddings.npy")
    with pytest.raises(storage.ArtifactMissing, match=r"item_embeddings\.npy is missing"):
        storage.local_path(uri)
    s3.client.delete_object(Bucket=s3.bucket, Key="models/3/43/_artifacts.json")
    with pytest.raises(storage.ArtifactMissing, match="upload never finished"):
        storage.local_path(uri)
    with pytest.raises(storage.ArtifactMissing):
        storage.local_path(f"s3://{s3.bucket}/models/3/999/")  # never uploaded at all


def test_published_files_reach_other_machines_and_discard_deletes_everything(s3):
    files = write_version(3, 44)
    uri = storage.save(3, 44, storage.version_dir(3, 44))
    (storage.local_path(uri) / "index.faiss").write_bytes(b"an index")
    storage.publish(uri, ["index.faiss"])
    storage.shutil.rmtree(s3.cache)
    assert read_all(storage.local_path(uri)) == {**files, "index.faiss": b"an index"}

    storage.discard(3, 44)
    assert keys(s3) == []
    assert not (s3.cache / s3.bucket / "models" / "3" / "44").exists()


def test_the_store_setting_is_validated(monkeypatch):
    import importlib

    import config.settings as config_settings
    from config.env import ImproperlyConfiguredEnv

    monkeypatch.setenv("RECSVC_ARTIFACT_STORE", "s3://Not_A_Bucket/x")
    with pytest.raises(ImproperlyConfiguredEnv, match="RECSVC_ARTIFACT_STORE"):
        importlib.reload(config_settings)
    monkeypatch.setenv("RECSVC_ARTIFACT_STORE", "gs://bucket")
    with pytest.raises(ImproperlyConfiguredEnv, match="RECSVC_ARTIFACT_STORE"):
        importlib.reload(config_settings)
    monkeypatch.delenv("RECSVC_ARTIFACT_STORE")
    importlib.reload(config_settings)


@pytest.mark.django_db
def test_a_version_trained_into_s3_serves_after_the_local_copies_are_wiped(s3, all_tenants):
    from serving import registry_cache
    from tests.serving.trained import load_shop, train_active_version

    shop = TenantFactory()
    load_shop(shop)
    version = train_active_version(shop)
    assert version.artifact_uri.startswith(f"s3://{s3.bucket}/models/{shop.pk}/{version.pk}/")
    assert f"models/{shop.pk}/{version.pk}/_artifacts.json" in keys(s3)

    storage.shutil.rmtree(s3.cache)
    storage.shutil.rmtree(storage.version_dir(shop.pk, version.pk), ignore_errors=True)
    registry_cache.clear()
    model = registry_cache.served_model(shop.pk)
    assert model is not None and model.version_id == version.pk
    assert model.n_items == version.n_items
    assert (s3.cache / s3.bucket / "models" / str(shop.pk) / str(version.pk) / "manifest.json").exists()
