import json
import threading
from functools import partial

import pytest

from resources.storage import StorageError, StorageResource, parent_of, resolve_relative


def test_write_read_list_delete(storage):
    storage.write_bytes("skus/A-1/h1/clip.mp4", b"video")
    storage.write_json("skus/A-1/h1/record.json", {"ok": True})
    assert storage.read_bytes("skus/A-1/h1/clip.mp4") == b"video"
    assert storage.read_json("skus/A-1/h1/record.json") == {"ok": True}
    assert storage.exists("skus/A-1/h1/clip.mp4")
    assert not storage.exists("skus/A-1/h1/missing.mp4")
    assert storage.list_keys("skus/A-1") == ["skus/A-1/h1/clip.mp4", "skus/A-1/h1/record.json"]
    storage.delete("skus/A-1/h1/clip.mp4")
    assert not storage.exists("skus/A-1/h1/clip.mp4")


def test_overwrite_is_whole(storage):
    storage.write_bytes("a/b.bin", b"x" * 1000)
    storage.write_bytes("a/b.bin", b"y" * 10)
    assert storage.read_bytes("a/b.bin") == b"y" * 10


def test_missing_key_names_it(storage):
    with pytest.raises(StorageError, match="nope.bin"):
        storage.read_bytes("nope.bin")


@pytest.mark.parametrize("key", ["", "/abs/path", "../escape", "a/../../b", "dir/"])
def test_bad_keys_rejected(storage, key):
    with pytest.raises(StorageError, match="invalid storage key"):
        storage.write_bytes(key, b"x")


def test_local_write_leaves_no_temp_files(tmp_path):
    storage = StorageResource(root=str(tmp_path))
    storage.write_bytes("x/y.bin", b"data")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y.bin"]


def test_urls(tmp_path, s3_bucket):
    assert StorageResource(root=str(tmp_path)).url("a.mp4") == (tmp_path / "a.mp4").resolve().as_uri()
    s3 = StorageResource(root=f"s3://{s3_bucket}/p")
    s3.write_bytes("a.mp4", b"v")
    assert s3.url("a.mp4") == f"s3://{s3_bucket}/p/a.mp4"
    import httpx

    assert httpx.get(s3.presigned_url("a.mp4", 60)).content == b"v"


def test_relative_resolution():
    assert resolve_relative("packshots/a.png", "s3://b/drops") == "s3://b/drops/packshots/a.png"
    assert resolve_relative("s3://x/y.png", "/base") == "s3://x/y.png"
    assert parent_of("s3://b/drops/c.csv") == "s3://b/drops"


def test_s3_errors_name_the_object_and_the_code(s3_env):
    with pytest.raises(StorageError, match=r"s3://skuvid-no-such-bucket/x\.bin: NoSuchBucket"):
        StorageResource(root="s3://skuvid-no-such-bucket").read_bytes("x.bin")


def test_s3_errors_never_show_the_secret(s3_bucket, monkeypatch):
    from resources.storage import bucket_store

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-real-secret-4f2a")
    bucket_store.cache_clear()
    try:
        with pytest.raises(StorageError) as raised:
            StorageResource(root=f"s3://{s3_bucket}/p").write_bytes("a.bin", b"x")
    finally:
        bucket_store.cache_clear()
    assert "SignatureDoesNotMatch" in str(raised.value) and "4f2a" not in str(raised.value)


def test_s3_exists_reports_errors_other_than_absence(s3_bucket, monkeypatch):
    from resources.storage import bucket_store

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-real-secret-77c1")
    bucket_store.cache_clear()
    try:
        with pytest.raises(StorageError, match=rf"s3://{s3_bucket}/p/a\.bin") as raised:
            StorageResource(root=f"s3://{s3_bucket}/p").exists("a.bin")
    finally:
        bucket_store.cache_clear()
    assert "77c1" not in str(raised.value)


def append_token(token: str, current: bytes | None) -> tuple[bytes, int]:
    tokens = json.loads(current) if current else []
    return json.dumps([*tokens, token]).encode(), len(tokens)


def test_update_creates_then_changes(storage):
    assert storage.update("catalog/list.json", partial(append_token, "a")) == 0
    assert storage.update("catalog/list.json", partial(append_token, "b")) == 1
    assert storage.read_json("catalog/list.json") == ["a", "b"]


def test_update_reruns_the_change_when_another_writer_got_in_first(storage):
    calls = []

    def change(current):
        calls.append(current)
        if len(calls) == 1:  # another process writes between our read and our write
            storage.write_bytes("catalog/list.json", json.dumps(["theirs"]).encode())
        return append_token("ours", current)

    storage.write_bytes("catalog/list.json", b"[]")
    storage.update("catalog/list.json", change)
    assert storage.read_json("catalog/list.json") == ["theirs", "ours"]
    assert calls == [b"[]", json.dumps(["theirs"]).encode()]


def test_update_of_an_absent_key_loses_to_a_concurrent_create(storage):
    calls = []

    def change(current):
        calls.append(current)
        if len(calls) == 1:
            storage.write_bytes("catalog/new.json", json.dumps(["first"]).encode())
        return append_token("second", current)

    storage.update("catalog/new.json", change)
    assert storage.read_json("catalog/new.json") == ["first", "second"]


def test_concurrent_updates_lose_nothing(storage):
    tokens = [f"writer-{i}" for i in range(8)]
    barrier = threading.Barrier(len(tokens))

    def write(token):
        barrier.wait()
        storage.update("catalog/list.json", partial(append_token, token))

    threads = [threading.Thread(target=write, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(storage.read_json("catalog/list.json")) == tokens


def test_update_leaves_no_lock_or_temp_files_in_listings(tmp_path):
    storage = StorageResource(root=str(tmp_path))
    storage.update("catalog/list.json", partial(append_token, "a"))
    assert storage.list_keys("catalog") == ["catalog/list.json"]


def test_key_of_maps_our_own_urls_back_to_keys(storage):
    assert storage.key_of(storage.url("published/A-1/h.mp4")) == "published/A-1/h.mp4"
    assert storage.key_of("s3://elsewhere/published/A-1/h.mp4") is None
    assert storage.key_of(storage.url("x")[:-1] + "../outside.mp4") is None
