"""Opening the S3 store on the real S3 server: workers starting together on an empty server all get the bucket
(``BucketAlreadyOwnedByYou``/``BucketAlreadyExists`` from the losers of the race count as success), and a server
that is not up yet does not stop a worker from starting — the bucket is checked on first use."""

from __future__ import annotations

import threading

import pytest

from pipeline.config import with_overrides
from pipeline.store import StoreUnavailable
from pipeline.store.s3 import S3Store

pytestmark = pytest.mark.integration


def test_workers_starting_together_on_an_empty_server_all_get_the_bucket(real_stack, unique_name: str) -> None:  # noqa: ANN001
    config = real_stack.with_prefix(unique_name, bucket=unique_name).store.s3
    start = threading.Barrier(6)
    errors: list[BaseException] = []
    stores: list[S3Store] = []

    def open_store() -> None:
        start.wait()
        try:
            stores.append(S3Store(config))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(stores) == 6
    stores[0].put("probe", b"x")
    assert all(s.get("probe") == b"x" for s in stores)
    late = S3Store(config)
    late._bucket_ready = False  # noqa: SLF001 - the losing side of the race, made certain
    late._make_bucket()  # noqa: SLF001 - the bucket exists: its creation error counts as success
    late.ensure_bucket()


def test_a_store_that_is_not_up_yet_does_not_stop_a_worker(real_stack, unique_name: str) -> None:  # noqa: ANN001
    config = with_overrides(real_stack.with_prefix(unique_name, bucket=unique_name),
                            {"store.s3.endpoint": "127.0.0.1:9"}).store.s3  # nothing listens on port 9
    store = S3Store(config)  # starts; the bucket is checked on first use
    with pytest.raises(StoreUnavailable):
        store.put("x", b"y")
