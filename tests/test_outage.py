"""course_lib.outage: the forwarder passes bytes, refuses, black-holes and recovers, on an echo server and on
the real PostgreSQL."""
from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest

from course_lib.config import resolve_profile
from course_lib.outage import THREAD_PREFIX, Forwarder, ForwarderError, Mode

SILENCE_S = 0.5  # how long a black-holed reply is waited for (its absence is the behaviour under test)


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server (one thread per connection) for the duration of a test."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    running = True

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def serve() -> None:
        while running:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    running = False
    thread.join()
    listener.close()


def connect(port: int) -> socket.socket:
    """A client connection with a short read timeout."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(SILENCE_S)
    return sock


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    """Send, then read back as many bytes."""
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += sock.recv(4096)
    return received


def is_cut(sock: socket.socket) -> bool:
    """Whether the peer closed or reset the connection (a read returns nothing or fails)."""
    try:
        sock.sendall(b"?")
        return sock.recv(10) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_pass_through_forwards_both_ways(echo_port: int) -> None:
    with Forwarder(echo_port) as forwarder, connect(forwarder.port) as sock:
        assert forwarder.mode is Mode.PASS and forwarder.port != echo_port
        assert roundtrip(sock, b"hello") == b"hello"
        assert roundtrip(sock, b"x" * 200_000) == b"x" * 200_000
        assert forwarder.accepted == 1 and forwarder.open_connections == 1


def test_refuse_cuts_open_connections_and_refuses_new_ones_then_recovers_on_the_same_port(echo_port: int) -> None:
    with Forwarder(echo_port) as forwarder:
        port = forwarder.port
        with connect(port) as sock:
            assert roundtrip(sock, b"a") == b"a"
            forwarder.refuse()
            assert is_cut(sock)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        assert forwarder.open_connections == 0
        forwarder.pass_through()
        assert forwarder.port == port
        with connect(port) as sock:
            assert roundtrip(sock, b"back") == b"back"


def test_black_hole_accepts_and_never_answers_then_delivers_everything_held(echo_port: int) -> None:
    with Forwarder(echo_port) as forwarder:
        with connect(forwarder.port) as before:
            assert roundtrip(before, b"1") == b"1"
            forwarder.black_hole()
            during = connect(forwarder.port)  # accepted: the connection itself succeeds
            before.sendall(b"held-before")
            during.sendall(b"held-during")
            for sock in (before, during):
                with pytest.raises(TimeoutError):
                    sock.recv(100)
            forwarder.pass_through()
            with during:
                for sock, expected in ((before, b"held-before"), (during, b"held-during")):
                    sock.settimeout(5)
                    received = b""
                    while len(received) < len(expected):
                        received += sock.recv(100)
                    assert received == expected
        assert forwarder.accepted == 2


def test_outage_context_restores_pass_through(echo_port: int) -> None:
    with Forwarder(echo_port) as forwarder:
        with forwarder.outage("black_hole"):
            assert forwarder.mode is Mode.BLACK_HOLE
        assert forwarder.mode is Mode.PASS
        with forwarder.outage(Mode.REFUSE), pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", forwarder.port), timeout=5)
        with connect(forwarder.port) as sock:
            assert roundtrip(sock, b"ok") == b"ok"


def forwarder_threads() -> list[threading.Thread]:
    """Live threads started by a Forwarder."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def test_stop_closes_the_port_and_every_thread(echo_port: int) -> None:
    forwarder = Forwarder(echo_port).start()
    sock = connect(forwarder.port)
    assert roundtrip(sock, b"z") == b"z"
    forwarder.black_hole()
    assert forwarder_threads(), "the forwarder's threads are named, so this test can see them"
    forwarder.stop()
    sock.close()
    assert forwarder_threads() == []  # the echo fixture's own threads end on their own time; not counted
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", forwarder.port), timeout=5)
    with pytest.raises(ForwarderError, match="stopped"):
        forwarder.black_hole()


@pytest.mark.enterprise
def test_postgres_through_the_forwarder_fails_as_a_stopped_or_hung_server_would() -> None:
    settings = resolve_profile("enterprise").settings
    with Forwarder(settings.pg_port, settings.pg_host) as forwarder:
        conninfo = f"host=127.0.0.1 port={forwarder.port} user={settings.pg_user} dbname=postgres connect_timeout=1"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            forwarder.refuse()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="refused"):
            psycopg.connect(conninfo)
        forwarder.black_hole()
        with pytest.raises(psycopg.OperationalError, match="timeout"):
            psycopg.connect(conninfo)  # accepted, never answered: libpq's connect_timeout ends it
        forwarder.pass_through()
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT 2").fetchone() == (2,)
