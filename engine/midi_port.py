"""Live MIDI input through python-rtmidi (ALSA or JACK), chosen by name substring, with hot-plug.

The port is matched by a case-insensitive substring of its name (``--midi-in disklavier``). Each
message is stamped with the show's time source on arrival and normalised into the event queue from
rtmidi's callback thread. A watcher thread polls the port list (default every 0.5 s): when the port
disappears the show goes on, and when a matching port returns it is reconnected.

rtmidi is used directly rather than through mido's port wrapper because the wrapper names our own
JACK port after the source ("client:port"), and JACK then fails to connect it silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator

import mido
import rtmidi

from engine.errors import UserError
from engine.midi import EventQueue, normalize

log = logging.getLogger("showrunner.midi")

API_NAMES = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}
CLIENT_NAME = "showrunner"


def api_from_environment(default: str = "auto") -> str:
    """The MIDI API to use: ``MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK`` selects JACK."""
    backend = os.environ.get("MIDO_BACKEND", "")
    if backend.endswith("/UNIX_JACK"):
        return "jack"
    if backend.endswith("/LINUX_ALSA"):
        return "alsa"
    return default


@contextlib.contextmanager
def _quiet_c_stderr() -> Iterator[None]:
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


def input_port_names(api: str = "auto") -> dict[str, list[str]]:
    """Source ports per available MIDI API, e.g. ``{"jack": ["piano:out"]}``; unreachable APIs omitted."""
    found: dict[str, list[str]] = {}
    for name in _apis(api):
        try:
            with _quiet_c_stderr():
                probe = rtmidi.MidiIn(rtapi=API_NAMES[name], name=f"{CLIENT_NAME}-probe")
                try:
                    found[name] = list(probe.get_ports())
                finally:
                    probe.delete()
        except (RuntimeError, SystemError, rtmidi.RtMidiError):
            continue
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

    Args:
        pattern: case-insensitive substring of the source port's name.
        queue: the show's event queue.
        now: the time source's clock, called on rtmidi's thread to stamp arrivals (seconds).
        api: "alsa", "jack" or "auto" (ALSA first, then JACK).
        poll_interval: seconds between port-list polls while watching for hot-plug, default 0.5.
    """

    def __init__(self, pattern: str, queue: EventQueue, now: Callable[[], float],
                 api: str = "auto", poll_interval: float = 0.5) -> None:
        self.pattern = pattern
        self.queue = queue
        self.now = now
        self.api = api
        self.poll_interval = poll_interval
        self.port_name: str | None = None
        self.connected = False
        self._api_in_use: str | None = None
        self._midi_in: rtmidi.MidiIn | None = None
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, required: bool = True) -> None:
        """Connect now and start watching for hot-plug.

        A missing port is bad input (exit 2, listing the ports there are) when ``required`` (the
        performer named it on the command line); otherwise it is a warning, and the port is
        connected as soon as it appears (a setlist's piano switched on after the show started).
        """
        if not self._try_connect(input_port_names(self.api), required):
            log.warning("MIDI input '%s' not found yet; watching for it (%s)", self.pattern,
                        self._listing(input_port_names(self.api)))
        self._thread = threading.Thread(target=self._watch, name="midi-hotplug", daemon=True)
        self._thread.start()

    def _try_connect(self, ports: dict[str, list[str]], required: bool = False) -> bool:
        for api, names in ports.items():
            name = match_port(self.pattern, names)
            if name is not None:
                self._connect(api, name)
                return True
        if required:
            raise UserError(f"no MIDI input matches '{self.pattern}'; {self._listing(ports)}")
        return False

    @staticmethod
    def _listing(ports: dict[str, list[str]]) -> str:
        listing = "; ".join(f"{api}: {', '.join(n) or '(none)'}" for api, n in ports.items())
        return f"ports: {listing or 'none (no ALSA sequencer or JACK server reachable)'}"

    def start(self, origin: float) -> None:
        """Nothing to do: arrivals are stamped with the time source directly (MIDI source interface)."""

    def poll(self, now: float) -> None:
        """Nothing to do per frame: arrivals come on rtmidi's thread (MIDI source interface)."""

    def take_notices(self) -> list[str]:
        """Connection changes since the last call ("midi_connected", "midi_lost", "midi_reconnected")."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._release()

    def _on_message(self, payload, _data=None) -> None:
        stamp = self.now()
        message_bytes, _delta = payload
        try:
            msg = mido.Message.from_bytes(message_bytes)
        except (ValueError, TypeError):
            return
        event = normalize(msg)
        if event is not None:
            self.queue.push(stamp, event)

    def _connect(self, api: str, name: str) -> None:
        if self._midi_in is None or self._api_in_use != api:
            self._release()
            with _quiet_c_stderr():
                midi_in = rtmidi.MidiIn(rtapi=API_NAMES[api], name=CLIENT_NAME)
            midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
            self._midi_in, self._api_in_use = midi_in, api
        index = list(self._midi_in.get_ports()).index(name)
        # Set on every (re)connection: python-rtmidi's close_port() cancels the callback.
        self._midi_in.set_callback(self._on_message)
        self._midi_in.open_port(index, "midi_in")
        self.port_name, self.connected = name, True
        log.info("MIDI input connected: %s (%s)", name, api)

    def _disconnect(self) -> None:
        """Close our port but keep the client: it lists ports while we wait for a return."""
        self.connected = False
        if self._midi_in is not None:
            with contextlib.suppress(Exception):
                self._midi_in.close_port()

    def _release(self) -> None:
        midi_in, self._midi_in = self._midi_in, None
        self.connected = False
        if midi_in is not None:
            with contextlib.suppress(Exception):
                midi_in.cancel_callback()
                midi_in.close_port()
                midi_in.delete()

    def _notice(self, text: str) -> None:
        with self._lock:
            self._notices.append(text)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                if self._midi_in is None:  # never connected yet: probe every API asked for
                    if self._try_connect(input_port_names(self.api)):
                        self._notice("midi_connected")
                    continue
                names = list(self._midi_in.get_ports())
                if self.connected and self.port_name not in names:
                    self._disconnect()
                    log.warning("MIDI input lost: %s; the show goes on, watching for it", self.port_name)
                    self._notice("midi_lost")
                elif not self.connected:
                    name = match_port(self.pattern, names)
                    if name is not None:
                        self._connect(self._api_in_use, name)
                        self._notice("midi_reconnected")
            except Exception:  # the watcher must outlive any backend hiccup
                log.exception("MIDI hot-plug watcher error; retrying")
