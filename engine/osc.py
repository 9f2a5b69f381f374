"""OSC in and out (python-osc), as the original piece talked to SuperCollider.

In: a thread reads UDP datagrams on the show's port (loopback unless the setlist names another
address), parses each with python-osc and hands the messages to the show, which acts on them at its
next tick (:data:`ADDRESSES` in docs/osc.md). Malformed packets, unknown addresses and floods never
stop the show or slow its frames: a packet that does not parse is counted and dropped; beyond
``rate_limit`` messages a second the rest are counted and dropped before parsing, and what is
waiting for the tick is bounded too. The counts are logged once a second when they change, shown
on the HUD and written to the metrics (``osc_received``, ``osc_malformed``, ``osc_dropped``,
``osc_unknown``, ``osc_handler_errors``: see :meth:`OscInput.on_message_now`).

Out: :class:`OscOutput` sends what happens (cue changes, each learner's loss, the notes, what
scenes emit) to every address listed, without ever waiting: a UDP send that fails is counted.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from engine.events import OscMessage

log = logging.getLogger("showrunner.osc")

PREFIX = "/showrunner"
RATE_LIMIT = 2000  # messages a second taken in; the rest of a flood is counted and dropped
INBOX = 4096  # messages waiting for the next tick at most


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """"HOST:PORT" or "PORT" -> (host, port); ValueError with a reason otherwise."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected PORT or HOST:PORT (a port 1-65535), got '{text}'")
    return host or default_host, int(port)


class OscInput:
    """Args: host, port: where to listen (port 0 = any free port: see ``port`` once started);
    clock: the show's time source (stamps); rate_limit: messages a second taken in."""

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, host: str, port: int, clock: Callable[[], float],
                 rate_limit: int = RATE_LIMIT) -> None:
        self.clock = clock
        self.rate_limit = rate_limit
        self.counts = {"osc_received": 0, "osc_malformed": 0, "osc_dropped": 0, "osc_unknown": 0,
                       "osc_handler_errors": 0}
        self._inbox: deque[OscMessage] = deque()
        self._now: dict[str, list[Callable[[OscMessage], None]]] = {}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._socket.bind((host, port))
        except OSError as error:
            self._socket.close()
            from engine.errors import UserError

            raise UserError(f"cannot listen for OSC on {host}:{port}: {error.strerror or error}") from None
        self._socket.settimeout(0.2)
        self.host, self.port = self._socket.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osc-in", daemon=True)
        self._window_start, self._window_count = 0.0, 0
        self._logged = dict(self.counts)
        self._logged_at = 0.0

    def on_message_now(self, address: str, handler: Callable[[OscMessage], None]) -> None:
        """Call ``handler(message)`` on the listening thread as soon as a message to ``address``
        arrives, before the show takes it in its next tick as usual (for what must not wait a
        tick: a scene's decoder). A handler that raises is logged and counted (``osc_handler_errors``);
        it must be quick and never block."""
        self._now.setdefault(address, []).append(handler)

    def set_now_handlers(self, handlers: list[tuple[str, Callable[[OscMessage], None]]]) -> None:
        """Replace every :meth:`on_message_now` handler with ``handlers`` ((address, handler)): a
        show's scenes put back from a saved state (engine.recovery_state) take their own."""
        now: dict[str, list] = {}
        for address, handler in handlers:
            now.setdefault(address, []).append(handler)
        self._now = now

    def start(self) -> None:
        self._thread.start()
        log.info("listening for OSC on %s:%d", self.host, self.port)

    def _run(self) -> None:
        from pythonosc.osc_packet import OscPacket, ParseError

        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            if self._window_count > self.rate_limit:
                self.counts["osc_dropped"] += 1
                continue
            try:
                packet = OscPacket(data)
            except (ParseError, Exception):  # python-osc raises more than ParseError on garbage
                self.counts["osc_malformed"] += 1
                continue
            stamp = self.clock()
            for timed in packet.messages:
                message = timed.message
                arguments = tuple(a for a in message.params if isinstance(a, (int, float, str, bool)))
                if len(self._inbox) >= INBOX:
                    self.counts["osc_dropped"] += 1
                    continue
                received = OscMessage(message.address, arguments, stamp)
                for handler in self._now.get(message.address, ()):
                    try:
                        handler(received)
                    except Exception:  # the listener goes on; the tick still gets the message
                        self.counts["osc_handler_errors"] += 1
                        log.exception("OSC %s: a handler failed", message.address)
                self._inbox.append(received)
                self.counts["osc_received"] += 1

    def take(self) -> list[OscMessage]:
        """Every message received since the last call, oldest first (the show's tick)."""
        taken = []
        while self._inbox:
            taken.append(self._inbox.popleft())
        self._report()
        return taken

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._logged_at < 1.0 or self.counts == self._logged:
            return
        trouble = {k: v - self._logged[k] for k, v in self.counts.items() if k != "osc_received"}
        if any(trouble.values()):
            log.warning("OSC in the last second: %s", ", ".join(
                f"{v} {k.removeprefix('osc_')}" for k, v in trouble.items() if v))
        self._logged, self._logged_at = dict(self.counts), now

    def close(self) -> None:
        self._stop.set()
        self._socket.close()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)


class OscOutput:
    """Sends to every ``targets`` (host, port) pair; never blocks, never raises."""

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.targets = targets
        self.errors = 0
        self._clients = []
        for host, port in targets:
            try:
                client = SimpleUDPClient(host, port)
            except OSError as error:  # an unknown host name
                self.close()
                from engine.errors import UserError

                raise UserError(f"cannot send OSC to {host}:{port}: {error.strerror or error}") from None
            client._sock.setblocking(False)
            self._clients.append(client)

    def send(self, address: str, *args) -> None:
        for client in self._clients:
            try:
                client.send_message(address, list(args))
            except Exception:  # a full socket, a value python-osc cannot build: counted, never raised
                self.errors += 1
                if self.errors == 1:
                    log.warning("an OSC message to %s could not be sent (counted from now on)", address)

    def close(self) -> None:
        for client in self._clients:
            client._sock.close()
