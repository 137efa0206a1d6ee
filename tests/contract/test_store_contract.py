"""One contract for every object-store backend: a local folder and S3 (the real server)."""

from __future__ import annotations

import io
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.store import ObjectNotFound, ObjectStore, open_store
from pipeline.store.local import LocalStore


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "objects")
        return
    real = request.getfixturevalue("real_stack")
    s = open_store(real.with_prefix(unique_name, bucket=unique_name))
    yield s
    for info in list(s.list()):
        s.delete(info.key)
    s.close()


def test_put_get_stat_bytes(store: ObjectStore) -> None:
    info = store.put("frames/cam-1/2026-11-25/000001.jpg", b"\xff\xd8\xffjpeg", content_type="image/jpeg",
                     metadata={"camera-id": "cam-1", "Note": "川A·F058Y ✓"})
    assert info.size == 7
    assert store.get("frames/cam-1/2026-11-25/000001.jpg") == b"\xff\xd8\xffjpeg"
    st = store.stat("frames/cam-1/2026-11-25/000001.jpg")
    assert st.size == 7
    assert st.content_type == "image/jpeg"
    assert st.metadata == {"camera-id": "cam-1", "note": "川A·F058Y ✓"}
    assert st.etag and st.last_modified is not None


def test_ranged_get(store: ObjectStore) -> None:
    data = bytes(range(256)) * 64
    store.put("blob/range.bin", data)
    assert store.get("blob/range.bin", start=100, length=50) == data[100:150]
    assert store.get("blob/range.bin", start=16000) == data[16000:]


def test_put_from_file_and_stream_and_download(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "segment.ts"
    src.write_bytes(os.urandom(300_000))
    store.put("recordings/cam-1/seg.ts", src, content_type="video/mp2t")
    assert store.get("recordings/cam-1/seg.ts") == src.read_bytes()
    store.put("recordings/cam-1/stream.bin", io.BytesIO(b"streamed" * 1000))
    assert store.get("recordings/cam-1/stream.bin") == b"streamed" * 1000
    out = tmp_path / "out" / "copy.ts"
    store.download("recordings/cam-1/seg.ts", out)
    assert out.read_bytes() == src.read_bytes()


def test_large_stream_upload_is_complete(store: ObjectStore) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)  # larger than one multipart part
    store.put("big/12mib.bin", io.BytesIO(data))
    assert store.stat("big/12mib.bin").size == len(data)
    assert store.get("big/12mib.bin") == data


def test_retried_put_overwrites_instead_of_duplicating(store: ObjectStore) -> None:
    for attempt in range(3):
        store.put("tracks/cam-1/track-42.json", f'{{"attempt": {attempt}}}'.encode())
    listed = [i.key for i in store.list("tracks/")]
    assert listed == ["tracks/cam-1/track-42.json"]
    assert store.get("tracks/cam-1/track-42.json") == b'{"attempt": 2}'


def test_list_by_prefix_in_key_order(store: ObjectStore) -> None:
    keys = ["a/2.txt", "a/1.txt", "a/sub/3.txt", "b/4.txt", "ab/5.txt"]
    for k in keys:
        store.put(k, k.encode())
    assert [i.key for i in store.list("a/")] == ["a/1.txt", "a/2.txt", "a/sub/3.txt"]
    assert [i.key for i in store.list("")] == sorted(keys)
    assert {i.key: i.size for i in store.list("b/")} == {"b/4.txt": 7}


def test_delete_and_missing_objects(store: ObjectStore) -> None:
    store.put("tmp/x.bin", b"x")
    assert store.exists("tmp/x.bin")
    store.delete("tmp/x.bin")
    store.delete("tmp/x.bin")  # deleting twice is fine
    assert not store.exists("tmp/x.bin")
    with pytest.raises(ObjectNotFound):
        store.get("tmp/x.bin")
    with pytest.raises(ObjectNotFound):
        store.stat("tmp/never.bin")
    assert list(store.list("tmp/")) == []


def test_presigned_get_downloads_with_a_plain_request(store: ObjectStore) -> None:
    store.put("crops/cam-1/t1.jpg", b"crop-bytes", content_type="image/jpeg")
    url = store.presigned_get("crops/cam-1/t1.jpg", expires_s=300)
    assert url.startswith("file://" if store.name == "local" else "http://")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own store
        assert response.read() == b"crop-bytes"
    with pytest.raises(ObjectNotFound):
        store.presigned_get("crops/cam-1/missing.jpg")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "trailing/", "./x", "sp ace", "a\\b"])
def test_invalid_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")
