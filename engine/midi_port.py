"""Live MIDI input through python-rtmidi (ALSA or JACK), chosen by name substring, with hot-plug.

The port is matched by a case-insensitive substring of its name (``--midi-in disklavier``). Each
message is stamped with the show's time source on arrival and normalised into the event queue. The
port list is checked five times a second: when the port disappears the show goes on, and when a
matching port returns it is reconnected. A port that vanishes and returns between two checks (under
0.2 s) can go unnoticed: rtmidi does not report connections, only port names.

rtmidi is used directly rather than through mido's port wrapper because the wrapper names our own
JACK port after the source ("client:port"), and JACK then fails to connect it silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import mido
import rtmidi

from engine.errors import UserError
from engine.midi import EventQueue, normalize

log = logging.getLogger("showrunner.midi")

API_NAMES = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}
CLIENT_NAME = "showrunner"
API_RETRY_SECONDS = 5.0


def api_from_environment(default: str = "auto") -> str:
    """The MIDI API to use: ``MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK`` selects JACK."""
    backend = os.environ.get("MIDO_BACKEND", "")
    if backend.endswith("/UNIX_JACK"):
        return "jack"
    if backend.endswith("/LINUX_ALSA"):
        return "alsa"
    return default


@contextlib.contextmanager
def quiet_c_stderr() -> Iterator[None]:
    """Silence what ALSA and libjack print on file descriptor 2 while probing for ports."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _apis(api: str) -> list[str]:
    compiled = set(rtmidi.get_compiled_api())
    names = ["alsa", "jack"] if api == "auto" else [api]
    return [n for n in names if API_NAMES[n] in compiled]


def open_client(api: str, name: str = CLIENT_NAME) -> rtmidi.MidiIn | None:
    """An rtmidi input client on ``api`` ("alsa" or "jack"), or None when that MIDI system is not
    reachable (no ALSA sequencer, no JACK server)."""
    try:
        with quiet_c_stderr():
            return rtmidi.MidiIn(rtapi=API_NAMES[api], name=name)
    except (RuntimeError, SystemError, rtmidi.RtMidiError):
        return None


def input_port_names(api: str = "auto") -> dict[str, list[str]]:
    """Source ports per available MIDI API, e.g. ``{"jack": ["piano:out"]}``; unreachable APIs omitted."""
    found: dict[str, list[str]] = {}
    for name in _apis(api):
        probe = open_client(name, f"{CLIENT_NAME}-probe")
        if probe is not None:
            try:
                found[name] = list(probe.get_ports())
            finally:
                probe.delete()
    return found


def match_port(pattern: str, names: list[str]) -> str | None:
    """First port whose name contains ``pattern`` (case-insensitive), skipping our own ports."""
    wanted = pattern.casefold()
    for name in names:
        if name.startswith(f"{CLIENT_NAME}:") or name.startswith(f"{CLIENT_NAME}-"):
            continue
        if wanted in name.casefold():
            return name
    return None


class MidiPortInput:
    """A live MIDI input that survives the port vanishing and reconnects when it returns.

    One thread of ours does all the work: it drains rtmidi's input queue every ``read_interval``
    and checks the port list every ``poll_interval``. No Python callback runs on rtmidi's thread:
    under JACK that thread is the audio process thread, and a callback there would wait for Python's
    GIL and make JACK miss its deadline. Arrival times are rebuilt from rtmidi's own delta times: the
    last message of a batch is stamped when it is read, each earlier one its delta before the next.

    Args:
        pattern: case-insensitive substring of the source port's name.
        queue: the show's event queue.
        now: the time source's clock (seconds).
        api: "alsa", "jack" or "auto" (ALSA first, then JACK).
        poll_interval: seconds between port-list checks (hot-plug), default 0.2.
        read_interval: seconds between reads of arrived messages, default 0.002.
    """

    def __init__(self, pattern: str, queue: EventQueue, now: Callable[[], float],
                 api: str = "auto", poll_interval: float = 0.2, read_interval: float = 0.002) -> None:
        self.pattern = pattern
        self.queue = queue
        self.now = now
        self.api = api
        self.poll_interval = poll_interval
        self.read_interval = read_interval
        self.port_name: str | None = None
        self.connected = False
        self._clients: dict[str, rtmidi.MidiIn] = {}  # one per API, kept for the whole show
        self._retry_at: dict[str, float] = {}  # monotonic time to try an unreachable API again
        self._api_in_use: str | None = None
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._port_lock = threading.Lock()  # the rtmidi client: reads vs. (re)connection
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, required: bool = True) -> None:
        """Connect now and start the input thread.

        A missing port is bad input (exit 2, listing the ports there are) when ``required`` (the
        performer named it on the command line); otherwise it is a warning, and the port is
        connected as soon as it appears (a setlist's piano switched on after the show started).
        """
        ports = self._ports()
        if not self._try_connect(ports):
            if required:
                raise UserError(f"no MIDI input matches '{self.pattern}'; {self._listing(ports)}")
            log.warning("MIDI input '%s' not found yet; watching for it (%s)", self.pattern,
                        self._listing(ports))
        self._thread = threading.Thread(target=self._run, name="midi-input", daemon=True)
        self._thread.start()

    def start(self, origin: float) -> None:
        """Nothing to do: arrivals are stamped with the time source directly (MIDI source interface)."""

    def poll(self, now: float) -> None:
        """Nothing to do per frame: the input thread delivers (MIDI source interface)."""

    def take_notices(self) -> list[str]:
        """Connection changes since the last call ("midi_connected", "midi_lost", "midi_reconnected")."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def read_pending(self) -> bool:
        """Move what has arrived into the queue now, from any thread, never waiting: False when
        the input thread holds the port at this moment (it then delivers itself).

        The audio process calls this at the start of every callback, so a note that reached the
        port before the block began sounds in that block, without waiting for the input thread's
        next read."""
        if not self._port_lock.acquire(blocking=False):
            return False
        try:
            self._read()
        except Exception:
            log.debug("MIDI read failed; the input thread will retry", exc_info=True)
        finally:
            self._port_lock.release()
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close_port()
                client.delete()
        self._clients.clear()
        self.connected = False

    # Everything below runs on the input thread (and in open(), before it starts).
    def _client(self, api: str) -> rtmidi.MidiIn | None:
        client = self._clients.get(api)
        if client is None:
            if time.monotonic() < self._retry_at.get(api, 0.0):
                return None
            client = open_client(api)
            if client is None:
                # No ALSA sequencer / no JACK server now: ask again in a while, not at every check.
                self._retry_at[api] = time.monotonic() + API_RETRY_SECONDS
                return None
            client.ignore_types(sysex=True, timing=True, active_sense=True)
            self._clients[api] = client
        return client

    def _ports(self) -> dict[str, list[str]]:
        found = {}
        for api in ([self._api_in_use] if self._api_in_use else _apis(self.api)):
            client = self._client(api)
            if client is not None:
                found[api] = list(client.get_ports())
        return found

    def _try_connect(self, ports: dict[str, list[str]]) -> bool:
        for api, names in ports.items():
            name = match_port(self.pattern, names)
            if name is not None:
                client = self._clients[api]
                client.open_port(names.index(name), "midi_in")
                self._api_in_use, self.port_name, self.connected = api, name, True
                log.info("MIDI input connected: %s (%s)", name, api)
                return True
        return False

    @staticmethod
    def _listing(ports: dict[str, list[str]]) -> str:
        listing = "; ".join(f"{api}: {', '.join(n) or '(none)'}" for api, n in ports.items())
        return f"ports: {listing or 'none (no ALSA sequencer or JACK server reachable)'}"

    def _notice(self, text: str) -> None:
        with self._lock:
            self._notices.append(text)

    def _read(self) -> None:
        client = self._clients.get(self._api_in_use) if self._api_in_use else None
        if client is None:
            return
        batch = []
        while (item := client.get_message()) is not None:
            batch.append(item)
        if not batch:
            return
        stamp = self.now()
        stamps = [stamp]
        for _, delta in reversed(batch[1:]):
            stamp -= delta
            stamps.append(stamp)
        for (message_bytes, _), at in zip(batch, reversed(stamps)):
            try:
                event = normalize(mido.Message.from_bytes(message_bytes))
            except (ValueError, TypeError):
                continue
            if event is not None:
                self.queue.push(at, event)

    def _check_port(self) -> None:
        ports = self._ports()
        names = [n for found in ports.values() for n in found]
        if self.connected and self.port_name not in names:
            self._read()  # what arrived before it went
            with contextlib.suppress(Exception):
                self._clients[self._api_in_use].close_port()
            self.connected = False
            log.warning("MIDI input lost: %s; the show goes on, watching for it", self.port_name)
            self._notice("midi_lost")
        elif not self.connected:
            first = self.port_name is None
            if self._try_connect(ports):
                self._notice("midi_connected" if first else "midi_reconnected")

    def _run(self) -> None:
        next_check = 0.0
        while not self._stop.wait(self.read_interval):
            try:
                with self._port_lock:
                    self._read()
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + self.poll_interval
                        self._check_port()
            except Exception:  # the input thread must outlive any backend hiccup
                log.exception("MIDI input error; retrying")
                self._stop.wait(self.poll_interval)
