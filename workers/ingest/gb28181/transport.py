"""SIP over UDP and TCP for the GB/T 28181 platform: sockets, reader threads, client transactions with
UDP retransmission (RFC 3261 timers E/F and A/B), and a response cache that answers retransmitted
requests without handling them twice.

Incoming requests and unmatched responses go to the ``on_request`` callback; malformed datagrams or
TCP messages are counted, logged with their source and answered ``400`` when enough of them parses.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workers.ingest.gb28181.sip import (
    SipMessage,
    SipParseError,
    SipStreamParser,
    parse_message,
    response_to,
)

log = logging.getLogger(__name__)

T1 = 0.5
T2 = 4.0
_CACHE_S = 32.0


class SipTimeout(TimeoutError):
    """No final response to a request in time."""


@dataclass
class Peer:
    """Where a message came from / goes to. ``conn`` is set for TCP."""

    transport: str  # "UDP" or "TCP"
    host: str
    port: int
    conn: _TcpConn | None = None

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{self.host}:{self.port}"


class _TcpConn:
    def __init__(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        self.sock = sock
        self.addr = addr
        self.lock = threading.Lock()
        self.closed = False
        self.outgoing: tuple[str, int] | None = None  # set for connections we opened

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@dataclass
class _ClientTx:
    request: SipMessage
    peer: Peer
    done: threading.Event = field(default_factory=threading.Event)
    final: SipMessage | None = None
    provisional: bool = False


@dataclass
class TransportStats:
    received: int = 0
    malformed: int = 0
    retransmitted_requests: int = 0
    retransmissions_sent: int = 0


def _bind_pair(host: str, port: int, tries: int = 20) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to the same port. With port 0 the number the kernel gives UDP may be taken for
    TCP (an outgoing connection's port): then another is tried."""
    for _ in range(tries if port == 0 else 1):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            if port != 0:
                raise
            continue
        return udp, tcp
    msg = f"no port on {host} free for both UDP and TCP after {tries} tries"
    raise OSError(msg)


class SipTransport:
    """UDP and TCP SIP listeners on one address and port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_request: Callable[[SipMessage, Peer], None],
        on_malformed: Callable[[bytes, Peer, str], None] | None = None,
        on_tcp_closed: Callable[[Peer], None] | None = None,
        on_response: Callable[[SipMessage, Peer], None] | None = None,
    ) -> None:
        self.host = host
        self._on_request = on_request
        self._on_malformed = on_malformed
        self._on_tcp_closed = on_tcp_closed
        self._on_response = on_response
        self.stats = TransportStats()
        self._stop = threading.Event()
        self._udp, self._tcp = _bind_pair(host, port)
        self.port = self._udp.getsockname()[1]
        self._tcp.listen(64)
        self._txs: dict[str, _ClientTx] = {}
        self._cache: dict[tuple[str, str, int, str], tuple[float, bytes]] = {}
        self._lock = threading.Lock()
        self._conns: set[_TcpConn] = set()
        self._threads = [threading.Thread(target=self._udp_loop, name="sip-udp", daemon=True),
                         threading.Thread(target=self._accept_loop, name="sip-tcp", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stop.set()
        self._udp.close()
        self._tcp.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        for thread in self._threads:
            thread.join(2)

    # -- outgoing TCP ---------------------------------------------------------------------------------
    def connect(self, host: str, port: int, timeout: float = 5.0) -> Peer:
        """A TCP connection to ``host:port`` for our requests (a superior platform), reused while it is open;
        what arrives on it is handled like any other SIP over TCP."""
        with self._lock:
            for conn in self._conns:
                if conn.outgoing == (host, port) and not conn.closed:
                    return Peer("TCP", host, port, conn)
        sock = socket.create_connection((host, port), timeout=timeout)
        conn = _TcpConn(sock, (host, port))
        conn.outgoing = (host, port)
        with self._lock:
            self._conns.add(conn)
        threading.Thread(target=self._tcp_loop, args=(conn,), name=f"sip-tcp-out-{port}", daemon=True).start()
        return Peer("TCP", host, port, conn)

    # -- sending ------------------------------------------------------------------------------------
    def send(self, message: SipMessage, peer: Peer) -> None:
        data = message.to_bytes()
        if peer.transport == "TCP":
            if peer.conn is None or peer.conn.closed:
                msg = f"no open TCP connection to {peer}"
                raise ConnectionError(msg)
            peer.conn.send(data)
        else:
            self._udp.sendto(data, (peer.host, peer.port))

    def respond(self, request: SipMessage, response: SipMessage, peer: Peer) -> None:
        """Send a response and remember it for retransmitted copies of the request."""
        data = response.to_bytes()
        try:
            key = self._cache_key(request)
        except SipParseError:
            key = None
        if key is not None:
            with self._lock:
                self._cache[key] = (time.monotonic(), data)
        try:
            self.send(response, peer)
        except OSError as exc:
            log.info("could not answer %s to %s: %s", request.summary(), peer, exc)

    def request(self, message: SipMessage, peer: Peer, *, timeout: float = 32.0) -> SipMessage:
        """Send a request and wait for its final response (retransmitting over UDP)."""
        branch = message.top_via.branch or ""
        tx = _ClientTx(message, peer)
        with self._lock:
            self._txs[branch] = tx
        try:
            self.send(message, peer)
            deadline = time.monotonic() + timeout
            interval = T1
            while not tx.done.wait(min(interval, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    msg = f"no final response to {message.summary()} from {peer} within {timeout:.0f} s"
                    raise SipTimeout(msg)
                if peer.transport == "UDP" and not (tx.provisional and message.method == "INVITE"):
                    self.send(message, peer)
                    self.stats.retransmissions_sent += 1
                interval = min(interval * 2, T2)
            assert tx.final is not None
            return tx.final
        finally:
            with self._lock:
                self._txs.pop(branch, None)

    # -- receiving ----------------------------------------------------------------------------------
    def _dispatch(self, data: bytes, peer: Peer) -> bool:
        """Handle one message; False if it was malformed."""
        self.stats.received += 1
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.stats.malformed += 1
            log.warning("malformed SIP from %s: %s", peer, exc)
            if self._on_malformed is not None:
                self._on_malformed(data, peer, str(exc))
            return False
        if message.is_request:
            self._request(message, peer)
        else:
            self._response(message, peer)
        return True

    def _request(self, message: SipMessage, peer: Peer) -> None:
        key = self._cache_key(message)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and message.method != "ACK":
            self.stats.retransmitted_requests += 1
            try:
                if peer.transport == "TCP" and peer.conn is not None:
                    peer.conn.send(cached[1])
                else:
                    self._udp.sendto(cached[1], (peer.host, peer.port))
            except OSError:
                pass
            return
        try:
            self._on_request(message, peer)
        except Exception as exc:  # never let one bad message kill the listener
            log.exception("handling %s from %s failed", message.summary(), peer)
            if message.method != "ACK":
                self.respond(message, response_to(message, 500, f"Server Internal Error: {type(exc).__name__}"),
                             peer)

    def _response(self, message: SipMessage, peer: Peer) -> None:
        branch = message.top_via.branch or ""
        with self._lock:
            tx = self._txs.get(branch)
        if tx is None or message.status is None:
            if self._on_response is not None:
                self._on_response(message, peer)  # e.g. a retransmitted 200 to INVITE that needs an ACK again
            return
        if message.status < 200:
            tx.provisional = True
            return
        tx.final = message
        tx.done.set()

    @staticmethod
    def _cache_key(message: SipMessage) -> tuple[str, str, int, str]:
        number, method = message.cseq
        return (message.call_id, message.top_via.branch or "", number, method)

    def expire_cache(self) -> None:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (t, _) in self._cache.items() if now - t > _CACHE_S]:
                del self._cache[key]

    # -- threads ------------------------------------------------------------------------------------
    def _udp_loop(self) -> None:
        self._udp.settimeout(0.5)
        while not self._stop.is_set():
            try:
                data, addr = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if data.strip(b"\r\n\x00 "):
                self._dispatch(data, Peer("UDP", addr[0], addr[1]))

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._tcp], [], [], 0.5)
                if not ready:
                    continue
                sock, addr = self._tcp.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            conn = _TcpConn(sock, addr)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._tcp_loop, args=(conn,), name=f"sip-tcp-{addr[1]}", daemon=True).start()

    def _tcp_loop(self, conn: _TcpConn) -> None:
        parser = SipStreamParser()
        peer = Peer("TCP", conn.addr[0], conn.addr[1], conn)
        conn.sock.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    data = conn.sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                try:
                    chunks = parser.feed(data)
                except SipParseError as exc:
                    self.stats.malformed += 1
                    log.warning("malformed SIP stream from %s: %s; closing", peer, exc)
                    if self._on_malformed is not None:
                        self._on_malformed(data, peer, str(exc))
                    break
                if not all(self._dispatch(chunk, peer) for chunk in chunks):
                    log.info("closing SIP TCP connection %s after a malformed message", peer)
                    break
        except OSError as exc:
            log.debug("TCP connection %s: %s", peer, exc)
        finally:
            conn.close()
            with self._lock:
                self._conns.discard(conn)
            if self._on_tcp_closed is not None and not self._stop.is_set():
                self._on_tcp_closed(peer)
