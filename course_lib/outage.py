"""Simulated outages of a TCP service (PostgreSQL, Redis): a loopback forwarder you switch between modes.

Clients are pointed at `Forwarder.port` instead of the service; the forwarder copies bytes to
the real service (`target_host:target_port`) and back. A test or a check then switches it:

- `pass_through()`: a working service;
- `refuse()`: a stopped service: nothing listens on the port any more (new connections are
  refused) and every open connection is cut;
- `black_hole()`: a hung service or a silent network: new connections are accepted and never
  answered, and open connections stop carrying bytes in either direction. Nothing is dropped:
  bytes read during the black hole are held and delivered, in order, when it ends, as TCP
  would after a partition heals; connections accepted meanwhile reach the service then.

The port stays the same across modes (the listener is re-bound after `refuse`). Threads only:
one accepting thread and two copying threads per connection, all stopped by `stop()`.
"""
from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from enum import Enum
from types import TracebackType

from course_lib.errors import CourseError
from course_lib.messages import say

POLL_S = 0.05  # how often waiting threads look at the mode again
CHUNK = 65536
THREAD_PREFIX = "course-forwarder-"  # names every thread a Forwarder starts (tests look for them)


class Mode(str, Enum):
    """What the forwarder does with connections."""

    PASS = "pass"
    REFUSE = "refuse"
    BLACK_HOLE = "black_hole"


class ForwarderError(CourseError):
    """The forwarder could not (re)open its port."""


class Link:
    """One client connection and, once the service is reachable, its upstream connection."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()

    def close(self) -> None:
        """Cut both sides (idempotent)."""
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class Forwarder:
    """A loopback port forwarded to `target_host:target_port`, switchable between `Mode`s."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port  # 0: chosen by the system at the first bind, then kept
        self.accepted = 0  # connections accepted so far, in any mode
        self._mode = Mode.PASS
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._links: list[Link] = []
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = False

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> Forwarder:
        """Listen on `port` and forward (mode PASS)."""
        self._stopped = False
        self._set_mode(Mode.PASS)
        return self

    def stop(self) -> None:
        """Close the port, cut every connection and end every thread."""
        self._stopped = True
        self._flowing.set()  # wake copying threads so they see their link closed
        self._close_listener()
        self._cut_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> Forwarder:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- modes ------------------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """The current mode."""
        return self._mode

    @property
    def open_connections(self) -> int:
        """Client connections currently held open."""
        with self._lock:
            return sum(not link.closed.is_set() for link in self._links)

    def pass_through(self) -> None:
        """Forward again: held bytes and held connections go through."""
        self._set_mode(Mode.PASS)

    def refuse(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        self._set_mode(Mode.REFUSE)

    def black_hole(self) -> None:
        """Accept new connections and answer nothing; open connections stop carrying bytes."""
        self._set_mode(Mode.BLACK_HOLE)

    @contextlib.contextmanager
    def outage(self, mode: Mode | str) -> Iterator[Forwarder]:
        """`refuse` or `black_hole` for the duration of a `with` block, then pass through again."""
        self._set_mode(Mode(mode))
        try:
            yield self
        finally:
            if not self._stopped:
                self.pass_through()

    def _set_mode(self, mode: Mode) -> None:
        """Switch modes: (re)open or close the listener, gate or release the copying threads."""
        if self._stopped:
            raise ForwarderError(say("outage.stopped"))
        self._mode = mode
        if mode is Mode.PASS:
            self._flowing.set()
        else:
            self._flowing.clear()
        if mode is Mode.REFUSE:
            self._close_listener()
            self._cut_all()
            return
        if self._listener is None:
            self._open_listener()
        if mode is Mode.PASS:
            with self._lock:
                held = [link for link in self._links if link.upstream is None and not link.closed.is_set()]
            for link in held:
                self._connect(link)

    # --- sockets --------------------------------------------------------------------------------

    def _open_listener(self) -> None:
        """Bind the (same) loopback port and start accepting."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.port))
        except OSError as exc:
            listener.close()
            raise ForwarderError(say("outage.port_taken", port=self.port, error=exc)) from exc
        listener.listen(128)
        listener.settimeout(POLL_S)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept, listener)

    def _close_listener(self) -> None:
        """Stop accepting; the accepting thread ends at its next poll."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # on Linux this stops listening at once, even during an accept()
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _cut_all(self) -> None:
        """Close every connection, held or forwarded."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def _spawn(self, target: object, *args: object) -> None:
        """Start a daemon thread and remember it for `stop`."""
        thread = threading.Thread(target=target, args=args, daemon=True,  # type: ignore[arg-type]
                                  name=f"{THREAD_PREFIX}{self.target[1]}")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        """Accept until this listener is closed; forward now (PASS) or hold the connection (BLACK_HOLE)."""
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            link = Link(client)
            with self._lock:
                self._links.append(link)
                self.accepted += 1
            if self._mode is Mode.PASS:
                self._connect(link)

    def _connect(self, link: Link) -> None:
        """Open the upstream connection of a link and copy both ways; a refused upstream cuts the client."""
        with self._lock:
            if link.upstream is not None or link.closed.is_set():
                return
            try:
                link.upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                link.close()
                return
            link.upstream.settimeout(None)
        self._spawn(self._copy, link, link.client, link.upstream)
        self._spawn(self._copy, link, link.upstream, link.client)

    def _copy(self, link: Link, src: socket.socket, dst: socket.socket) -> None:
        """Copy bytes one way, holding each chunk while the mode is not PASS; cut the link when a side closes."""
        try:
            while data := src.recv(CHUNK):
                while not self._flowing.wait(POLL_S):
                    if link.closed.is_set():
                        return
                if link.closed.is_set():
                    return
                dst.sendall(data)
        except OSError:
            pass
        link.close()
