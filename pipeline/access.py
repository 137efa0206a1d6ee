"""Least privilege in the object store: which service may read, write and list which keys.

Every service runs under its own store identity. :func:`access_matrix` says, from the configuration's
prefixes, what each one may do — one matrix for every place that enforces it: the local stack's SeaweedFS
identities (:mod:`pipeline.stack`), the MinIO policies in ``deploy/minio/`` (``tubeline stack access``
writes them; ``tests/unit/test_deploy.py`` checks they are in step) and :class:`ScopedStore`, which makes
the in-process run (``tubeline up``) and the flow tests fail the same way S3 would.

The matrix was worked out from the code (every ``put``/``delete``/``get``/``list`` per worker; see
``docs/security.md``) and says, in short: ``auth/`` and ``audit/`` are the API's alone; a worker's
``state/<kind>/`` is that worker's; ``recordings/`` are written only by ingest, ``crops/`` by detect,
``plates/`` and ``faces/`` by the enrichment workers, the catalog and the FAISS snapshots by the
indexer (also the Delta tables under ``index.table_prefix``, which the API only reads and lists),
synopsis outputs by the synopsis worker; the API reads what it serves (and keeps the operators'
hotlists, as it keeps the users). Deleting is a right of its own: only sessions, tokens, users and
hotlists (the API), compacted catalog segments and vacuumed table files (the indexer), handled synopsis
requests (the synopsis worker) and removed cameras are ever deleted — no service deletes evidence or audit entries. (SeaweedFS
has one ``Write`` action for put and delete, so locally a writer of a prefix may also delete in it; MinIO
policies keep them apart.) Every key a service writes it may also read (a put is answered with the new
object's metadata). Nobody but the admin creates or deletes buckets.

Patterns are object-key globs (``*`` spans ``/``), relative to the bucket; a listing is allowed when its
prefix matches a list pattern.

The bus has the same shape (:data:`KAFKA_GRANTS`: topics each service reads and writes, its consumer
groups). The local broker (Tansu) has no ACLs, so it is not enforced here; ``tubeline stack access
--kafka-acls`` prints the ``kafka-acls.sh`` commands for an Apache Kafka with authenticated principals.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from pipeline.store.base import ObjectInfo, ObjectStore, StoreError
from schemas import topics

if TYPE_CHECKING:
    from pipeline.bus.base import Producer
    from pipeline.config import TubelineConfig
    from pipeline.spool import Followup, Hook

SERVICES = ("api", "detect", "face", "index", "ingest", "plate", "quality", "rules", "synopsis")
"""One store identity per worker kind (the names of ``tubeline worker NAME``)."""
ADMIN = "admin"
"""The stack owner's identity: creates buckets; the CLI's admin commands, the one-process run, the tests."""
BROKER = "broker"
"""The local broker's identity (Tansu keeps its topics in its own bucket, and sees nothing else)."""

AUTH, AUDIT, EXPORTS = "auth", "audit", "exports"  # the API's own (workers.api: users, sessions, audit, clips)
# also the API's own: what operators did about alerts, alert snapshots, admin change records (workers.api.desk,
# .evidence, .routes_manage); the rules document admins edit and the rules worker reads (pipeline.rulesdoc)
DESK, EVIDENCE, CHANGES, RULES_DOC = "alert-desk", "alert-evidence", "admin/changes", "config"
NOTIFY_DEAD = "notify"  # webhooks' dead letters, written by the API's notifier (workers.api.notify)
CROPS, PLATES, FACES = "crops", "plates", "faces"  # evidence images of detect, plate and face
DETECT_STATE = "state/detect"  # workers.detect.state.SNAPSHOT_PREFIX

Operation = Literal["read", "write", "delete", "list"]


class AccessDenied(StoreError):
    """The service's identity may not do this (what S3 answers with ``AccessDenied``)."""


@dataclass(frozen=True)
class Grant:
    """What one identity may do: key patterns it may read, write (put), delete and list."""

    service: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    list: tuple[str, ...] = ()

    @property
    def readable(self) -> tuple[str, ...]:
        """Read patterns, including every written one (a put is answered with the object's metadata)."""
        return tuple(dict.fromkeys((*self.read, *self.write)))

    def allows(self, op: Operation, key: str) -> bool:
        patterns = {"read": self.readable, "write": self.write, "delete": self.delete, "list": self.list}[op]
        return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _under(*prefixes: str) -> tuple[str, ...]:
    return tuple(f"{p.strip('/')}/*" for p in prefixes)


def access_matrix(config: TubelineConfig) -> dict[str, Grant]:
    """Each service's grant for ``config``'s prefixes (see the module docstring and docs/security.md)."""
    rec = config.ingest.recordings.prefix
    cat, idx, tab = config.index.catalog_prefix, config.index.index_prefix, config.index.table_prefix
    syn, req = config.synopsis.prefix, config.synopsis.request_prefix
    reg, hot, plate_state = config.cameras.registry_prefix, config.hotlists.store_prefix, config.plate.state_prefix
    thumbs, reports = config.quality.thumbnail_prefix, config.quality.report_prefix
    face_state, rules_state = config.face.state_prefix, config.rules.state_prefix
    cases, evidence = config.cases.prefix, config.cases.evidence_prefix
    return {
        "api": Grant(
            "api",
            read=_under(cat, idx, tab, CROPS, PLATES, FACES, rec, reg, syn, thumbs),
            # the queued status of a requested synopsis, never its video or index; hotlists are operators'
            # data like users (`tubeline hotlists` runs as the API identity in a deployment); admins edit the
            # camera registry and the rules document through the API; daily reports (on demand from the KPI
            # page and scheduled by the API's companion); cases and evidence packages are the API's
            write=(*_under(AUTH, AUDIT, EXPORTS, req, hot, DESK, EVIDENCE, CHANGES, RULES_DOC, reg, NOTIFY_DEAD,
                           reports, cases, evidence),
                   f"{syn.strip('/')}/*.status.json"),
            delete=_under(AUTH, hot, reg),  # ended sessions, revoked tokens, removed users, hotlists and cameras
            list=_under(AUTH, AUDIT, cat, tab, syn, reg, hot, NOTIFY_DEAD, reports, cases, evidence, EXPORTS),
        ),
        "detect": Grant("detect", write=_under(CROPS, DETECT_STATE)),
        "face": Grant("face", read=_under(CROPS), write=_under(FACES, face_state)),
        # compaction; the Delta tables (index.catalog_format: delta): data files and log entries, vacuum's deletes,
        # and the log listing every reader of a table does
        "index": Grant("index", write=_under(cat, idx, tab), delete=_under(cat, tab), list=_under(cat, tab)),
        # GB/T 28181 channels a device announces are upserted into the registry; `tubeline cameras` runs as ingest
        "ingest": Grant("ingest", write=_under(rec, reg), delete=_under(reg), list=_under(reg)),
        "plate": Grant("plate", read=_under(CROPS, hot), write=_under(PLATES, plate_state), list=_under(hot)),
        # fault thumbnails; the catalog and the recordings' day indexes for recording-gap alerts (never the
        # registry: camera records hold encrypted passwords; the API makes the scheduled daily reports)
        "quality": Grant("quality", read=_under(cat, rec), write=_under(thumbs), list=_under(cat)),
        # the rules document admins edit; per-camera engine state, read back after a restart
        "rules": Grant("rules", read=(f"{RULES_DOC}/rules.json",), write=_under(rules_state)),
        "synopsis": Grant("synopsis", read=_under(cat, rec), write=_under(syn, req, f"{req}-invalid"),
                          delete=_under(req), list=_under(req, cat)),
    }


# -- the bus -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KafkaGrant:
    """Topics a service reads (in ``groups``; a name ending in ``*`` is a prefix: one group per process or
    per operator's tail) and writes. A consumer also writes its inputs' dead-letter topics (``<topic>.dlq``)."""

    read: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    @property
    def dead_letters(self) -> tuple[str, ...]:
        return tuple(f"{t}.dlq" for t in self.read) if self.groups and not self.groups[0].endswith("*") else ()


KAFKA_GRANTS: dict[str, KafkaGrant] = {
    "api": KafkaGrant(read=(topics.ALERTS.name, topics.DETECTIONS.name, topics.LIVE.name),
                      groups=("tubeline-alerts-tail-*", "tubeline-api-overlays-*", "tubeline-api-live-*",
                              "tubeline-notify")),
    "detect": KafkaGrant(read=(topics.FRAMES.name,), groups=("tubeline-detect",),
                         write=(topics.DETECTIONS.name, topics.OBJECTS.name, topics.TRACKS.name)),
    "face": KafkaGrant(read=(topics.OBJECTS.name,), groups=("tubeline-face",), write=(topics.FACES.name,)),
    "index": KafkaGrant(read=(topics.TRACKS.name, topics.PLATES.name, topics.FACES.name, topics.ALERTS.name, topics.CAMERA_STATUS.name,
                              topics.CAMERA_HEALTH.name), groups=("tubeline-index",)),
    "ingest": KafkaGrant(write=(topics.FRAMES.name, topics.CAMERA_STATUS.name, topics.LIVE.name)),
    "plate": KafkaGrant(read=(topics.OBJECTS.name,), groups=("tubeline-plate",), write=(topics.PLATES.name, topics.ALERTS.name)),
    "quality": KafkaGrant(read=(topics.FRAMES.name,), groups=("tubeline-quality",),
                          write=(topics.CAMERA_HEALTH.name, topics.ALERTS.name)),
    "rules": KafkaGrant(read=(topics.DETECTIONS.name, topics.CAMERA_STATUS.name), groups=("tubeline-rules",), write=(topics.ALERTS.name,)),
    "synopsis": KafkaGrant(read=(topics.TRACKS.name, topics.PLATES.name), groups=("tubeline-synopsis-cache-*",)),
}
"""Worked out from each worker's consumer (``topics``, ``group``) and producer calls; topics get the bus's
``topic_prefix`` when one is set. Topics are created beforehand by an admin (workers then need only Describe)."""


def kafka_acl_commands(bootstrap: str = "kafka:9092", topic_prefix: str = "") -> Iterator[str]:
    """``kafka-acls.sh`` commands granting each service (principal ``User:tubeline-<service>``) its topics."""
    def topic(name: str) -> str:
        return f"{topic_prefix}.{name}" if topic_prefix else name

    base = f"kafka-acls.sh --bootstrap-server {bootstrap} --add --allow-principal User:tubeline-"
    for name in SERVICES:
        grant = KAFKA_GRANTS[name]
        for t in grant.read:
            yield f"{base}{name} --operation Read --operation Describe --topic {topic(t)}"
        for group in grant.groups:  # group IDs get the topic prefix too
            pattern = " --resource-pattern-type prefixed" if group.endswith("*") else ""
            yield f"{base}{name} --operation Read --group {topic(group.rstrip('*'))}{pattern}"
        for t in (*grant.write, *grant.dead_letters):
            yield f"{base}{name} --operation Write --operation Describe --topic {topic(t)}"


# -- rendering for the servers that enforce it ------------------------------------------------------
def seaweed_actions(grant: Grant, bucket: str) -> list[str]:
    """SeaweedFS ``-s3.config`` actions of a grant on ``bucket``.

    SeaweedFS matches ``Action:bucket/key`` against the patterns; an action without a wildcard
    (``Read:bucket``) would cover every object of the bucket. HeadBucket (the store's start-up check) is
    authorised as ``Read`` on the bare bucket name, so the grant carries ``Read:<bucket minus its last
    character>?``: a pattern that matches the bucket name itself and no object key."""
    return [
        f"Read:{bucket[:-1]}?",
        *(f"Read:{bucket}/{p}" for p in grant.readable),
        *(f"Write:{bucket}/{p}" for p in dict.fromkeys((*grant.write, *grant.delete))),
        *(f"List:{bucket}/{p}" for p in grant.list),
    ]


def seaweed_identities(credentials: Mapping[str, Mapping[str, str]], matrix: Mapping[str, Grant], bucket: str,
                       broker_bucket: str) -> dict[str, Any]:
    """The SeaweedFS identities document: the admin, the broker (its bucket only) and one per service."""
    def identity(name: str, actions: list[str]) -> dict[str, Any]:
        creds = credentials[name]
        return {"name": name, "credentials": [{"accessKey": creds["access_key"], "secretKey": creds["secret_key"]}],
                "actions": actions}

    return {"identities": [
        identity(ADMIN, ["Admin", "Read", "Write", "List", "Tagging"]),
        identity(BROKER, [f"Read:{broker_bucket}", f"Write:{broker_bucket}", f"List:{broker_bucket}"]),
        *(identity(name, seaweed_actions(matrix[name], bucket)) for name in SERVICES),
    ]}


def minio_policy(grant: Grant, bucket: str) -> dict[str, Any]:
    """A MinIO (S3 IAM) policy for a grant on ``bucket``.

    ``s3:ListBucket`` is granted on the bucket without a prefix condition: MinIO (the release in
    deploy/compose.yaml) authorises HeadBucket as ListBucket with no prefix, which a prefix condition
    refuses. So in deploy every service can list key *names* of the bucket; reads and writes are scoped."""
    def arns(patterns: tuple[str, ...]) -> list[str]:
        return [f"arn:aws:s3:::{bucket}/{p}" for p in patterns]

    statements: list[dict[str, Any]] = [
        {"Sid": "BucketCheckAndListing", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": [f"arn:aws:s3:::{bucket}"]},
    ]
    if grant.readable:
        statements.append({"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject"],
                           "Resource": arns(grant.readable)})
    if grant.write:
        statements.append({"Sid": "Write", "Effect": "Allow",
                           "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                           "Resource": arns(grant.write)})
    if grant.delete:
        statements.append({"Sid": "Delete", "Effect": "Allow", "Action": ["s3:DeleteObject"],
                           "Resource": arns(grant.delete)})
    return {"Version": "2012-10-17", "Statement": statements}


def describe(matrix: Mapping[str, Grant]) -> Iterator[str]:
    """The matrix as text lines, one block per service (``tubeline stack access``)."""
    for name in SERVICES:
        grant = matrix[name]
        yield f"{name}:"
        yield f"  write  {' '.join(grant.write) or '-'}"
        yield f"  delete {' '.join(grant.delete) or '-'}"
        yield f"  read   {' '.join(grant.read) + ' ' if grant.read else ''}(and what it writes)"
        yield f"  list   {' '.join(grant.list) or '-'}"


# -- the same rules in process ------------------------------------------------------------------------
class ScopedStore(ObjectStore):
    """A store that allows one service what its grant allows and raises :class:`AccessDenied` otherwise.

    Used where several services share one process and one store (``tubeline up``, flow tests), so that a
    worker that reaches outside its prefixes fails there as it would on S3 under its own identity. It is
    a check on the code, not a security boundary: the process holds the store itself."""

    def __init__(self, store: ObjectStore, grant: Grant) -> None:
        self.inner = store
        self.grant = grant
        self.name = store.name

    def _check(self, op: Operation, key: str) -> None:
        if not self.grant.allows(op, key):
            msg = f"the {self.grant.service} identity may not {op} {key!r}"
            raise AccessDenied(msg)

    def put(self, key: str, data: bytes | BinaryIO | Path, *, content_type: str = "application/octet-stream",
            metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        self._check("write", key)
        return self.inner.put(key, data, content_type=content_type, metadata=metadata)

    def put_then(self, key: str, data: bytes | BinaryIO | Path, then: Sequence[Followup], *,
                 producer: Producer | None = None, hooks: Mapping[str, Hook] | None = None,
                 content_type: str = "application/octet-stream", metadata: Mapping[str, str] | None = None,
                 move: bool = False) -> bool:
        """:func:`pipeline.spool.put_then` through the grant: a write this identity may not make is refused here,
        before it could wait in a spool beneath; hooks run with this store, so what they write is checked too."""
        from pipeline.spool import put_then

        self._check("write", key)
        checked = {name: _through(self, handler) for name, handler in (hooks or {}).items()}
        return put_then(self.inner, key, data, then, producer=producer, hooks=checked, content_type=content_type,
                        metadata=metadata, move=move)

    def get(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        self._check("read", key)
        return self.inner.get(key, start=start, length=length)

    def download(self, key: str, path: Path) -> ObjectInfo:
        self._check("read", key)
        return self.inner.download(key, path)

    def stat(self, key: str) -> ObjectInfo:
        self._check("read", key)
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._check("list", prefix)
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._check("delete", key)
        self.inner.delete(key)

    def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        self._check("read", key)
        return self.inner.presigned_get(key, expires_s)

    def close(self) -> None:
        self.inner.close()


def _through(store: ObjectStore, handler: Hook) -> Hook:
    """``handler`` called with ``store`` instead of the store it is given."""
    def call(_: ObjectStore, payload: bytes) -> None:
        handler(store, payload)
    return call
