"""Least privilege on the real S3 server of the local stack: each service's identity is refused by SeaweedFS
itself (S3 ``AccessDenied``) outside its own prefixes — the API cannot write tracking state or delete
recordings, ingest cannot write ``auth/``, no service reads another's secrets or creates a bucket, and the
broker sees only its own bucket — while each can do its own job. The identities file comes from
``pipeline.access`` (``tubeline stack access`` prints the matrix)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.access import ADMIN, BROKER
from pipeline.config.stack import StackConfig
from pipeline.stack import LocalStack, free_port_block
from pipeline.store.base import ObjectNotFound, StoreError
from pipeline.store.s3 import S3Store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(real_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:  # noqa: ANN001
    """The session's local stack; when the session runs against other servers, a local S3 server of its own
    (the identities are this project's SeaweedFS configuration, so they are tested on SeaweedFS)."""
    if real_stack.stack is not None:
        yield real_stack.stack
        return
    own = LocalStack(StackConfig(state_dir=tmp_path_factory.mktemp("identities"),
                                 s3_port=free_port_block(1, also_grpc=True),
                                 seaweed_base_port=free_port_block(4, also_grpc=True)))
    own._start_s3()
    own._ensure_bucket(own.bucket)
    try:
        yield own
    finally:
        own.down()


def as_(stack: LocalStack, identity: str) -> S3Store:
    return S3Store(stack.client_config(as_=identity).store.s3)


def denied(call) -> str:  # noqa: ANN001
    with pytest.raises(StoreError) as info:
        call()
    assert "AccessDenied" in str(info.value), str(info.value)
    return str(info.value)


def test_each_identity_is_refused_outside_its_prefixes(stack: LocalStack) -> None:
    run = uuid.uuid4().hex[:10]
    api, ingest, detect = as_(stack, "api"), as_(stack, "ingest"), as_(stack, "detect")
    recording = f"recordings/cam-{run}/2026-11-25/000001.mp4"
    ingest.put(recording, b"segment")  # each does its own job...
    detect.put(f"state/detect/cam-{run}.json", b"{}")
    api.put(f"auth/users/u-{run}.json", b"{}")
    assert api.get(recording) == b"segment"  # ...and the API reads what it serves

    denied(lambda: api.put(f"state/detect/cam-{run}.json", b'{"planted": true}'))
    denied(lambda: api.put(f"state/plate/cam-{run}/t.json", b"{}"))
    denied(lambda: api.delete(recording))
    denied(lambda: api.put(recording, b"overwritten"))
    denied(lambda: ingest.put(f"auth/users/admin-{run}.json", b'{"role": "admin"}'))
    denied(lambda: ingest.put(f"audit/heads/{run}.json", b"{}"))
    denied(lambda: detect.get(f"auth/users/u-{run}.json"))  # password hashes, sessions, the media-link key
    denied(lambda: detect.put(f"index/faces/m/{run}/shard.faiss", b"not faiss"))
    denied(lambda: list(detect.list("auth/")))

    admin = as_(stack, ADMIN)
    assert admin.get(f"state/detect/cam-{run}.json") == b"{}"  # the refused writes changed nothing
    assert admin.get(recording) == b"segment"
    for key in (f"auth/users/admin-{run}.json", f"state/plate/cam-{run}/t.json"):
        with pytest.raises(ObjectNotFound):
            admin.stat(key)


def test_only_the_admin_creates_buckets_and_the_broker_sees_only_its_own(stack: LocalStack) -> None:
    from minio.error import S3Error

    bucket = "t" + uuid.uuid4().hex[:10]
    for identity in ("api", "index", "ingest"):
        config = stack.client_config(as_=identity).store.s3.model_copy(update={"bucket": bucket, "create_bucket": True})
        denied(lambda config=config: S3Store(config))
        with pytest.raises(S3Error) as info:
            as_(stack, identity).client.make_bucket(bucket)
        assert info.value.code == "AccessDenied"
    broker = stack.client_config(as_=BROKER).store.s3
    denied(lambda: S3Store(broker))  # the data bucket
    S3Store(broker.model_copy(update={"bucket": stack.config.kafka_bucket, "create_bucket": False}))
    S3Store(stack.client_config(as_=ADMIN).store.s3.model_copy(update={"bucket": bucket}))  # the admin may


def test_stack_env_gives_each_worker_its_identity(stack: LocalStack, tmp_path: Path) -> None:
    envs = {name: stack.env(name) for name in ("api", "detect", ADMIN)}
    keys = {name: env["TUBELINE_STORE__S3__ACCESS_KEY"] for name, env in envs.items()}
    assert len(set(keys.values())) == 3
    assert envs["api"]["TUBELINE_STORE__S3__CREATE_BUCKET"] == "false"
    assert envs[ADMIN]["TUBELINE_STORE__S3__CREATE_BUCKET"] == "true"
    assert envs["detect"]["TUBELINE_STORE__S3__BUCKET"] == stack.bucket
