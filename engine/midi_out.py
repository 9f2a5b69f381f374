"""Live MIDI output through python-rtmidi (ALSA or JACK): what scenes emit, to a hardware synth or a
Disklavier, which then plays it acoustically.

The destination is matched by a case-insensitive substring of its name, like the input. The port
list is checked five times a second by a thread of ours: when the destination disappears the show
goes on (messages meanwhile are counted as lost), and when a matching port returns it is connected
again. Sending never blocks the show: rtmidi hands a message to the MIDI system and returns.
"""

from __future__ import annotations

import logging
import threading

import rtmidi

from engine.errors import UserError
from engine.midi import ControlChange, MidiEvent, NoteOff, NoteOn, PitchBend, ProgramChange
from engine.midi_port import API_NAMES, CLIENT_NAME, _apis, match_port, quiet_c_stderr

log = logging.getLogger("showrunner.midi")


def _byte(value: int) -> int:
    return min(127, max(0, int(value)))


def message_bytes(event: MidiEvent) -> list[int] | None:
    """The raw MIDI bytes of an event (None for what has none); values out of range are clamped."""
    channel = min(15, max(0, int(event.channel)))
    if isinstance(event, NoteOn):
        return [0x90 | channel, _byte(event.note), max(1, _byte(event.velocity))]
    if isinstance(event, NoteOff):
        return [0x80 | channel, _byte(event.note), _byte(event.velocity)]
    if isinstance(event, ControlChange):
        return [0xB0 | channel, _byte(event.control), _byte(event.value)]
    if isinstance(event, ProgramChange):
        return [0xC0 | channel, _byte(event.program)]
    if isinstance(event, PitchBend):
        value = min(16383, max(0, event.value + 8192))
        return [0xE0 | channel, value & 127, value >> 7]
    return None


def output_port_names(api: str = "auto") -> dict[str, list[str]]:
    """Destination ports per available MIDI API; unreachable APIs omitted."""
    found: dict[str, list[str]] = {}
    for name in _apis(api):
        try:
            with quiet_c_stderr():
                probe = rtmidi.MidiOut(rtapi=API_NAMES[name], name=f"{CLIENT_NAME}-probe")
        except (RuntimeError, SystemError, rtmidi.RtMidiError):
            continue
        try:
            found[name] = list(probe.get_ports())
        finally:
            probe.delete()
    return found


class MidiPortOutput:
    """Args: pattern: case-insensitive substring of the destination's name; api: "alsa", "jack"
    or "auto"; poll_interval: seconds between checks of the port list (hot-plug)."""

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, pattern: str, api: str = "auto", poll_interval: float = 0.2) -> None:
        self.pattern = pattern
        self.api = api
        self.poll_interval = poll_interval
        self.sent = 0
        self.lost = 0
        self.port_name: str | None = None
        self._out: rtmidi.MidiOut | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="midi-out", daemon=True)

    def open(self, required: bool = True) -> None:
        """Connect now; ``required``: a missing port is bad input (exit 2, listing the ports),
        else it is waited for."""
        if not self._connect() and required:
            ports = [p for names in output_port_names(self.api).values() for p in names
                     if not p.startswith(CLIENT_NAME)]
            raise UserError(f"no MIDI output matches '{self.pattern}'; outputs: {', '.join(ports) or 'none'}")
        self._thread.start()

    def _connect(self) -> bool:
        for name in _apis(self.api):
            try:
                with quiet_c_stderr():
                    out = rtmidi.MidiOut(rtapi=API_NAMES[name], name=CLIENT_NAME)
            except (RuntimeError, SystemError, rtmidi.RtMidiError):
                continue
            try:
                ports = list(out.get_ports())
            except (RuntimeError, SystemError, rtmidi.RtMidiError):
                out.delete()
                continue
            port = match_port(self.pattern, ports)
            if port is None:
                out.delete()
                continue
            try:
                with quiet_c_stderr():
                    out.open_port(ports.index(port), "midi_out")
            except (RuntimeError, SystemError, rtmidi.RtMidiError):
                out.delete()
                continue
            with self._lock:
                self._out, self.port_name = out, port
            log.info("MIDI out: %s (%s)", port, name)
            return True
        return False

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            with self._lock:
                out, port = self._out, self.port_name
            if out is not None:
                try:
                    present = port in out.get_ports()
                except (RuntimeError, SystemError, rtmidi.RtMidiError):
                    present = False
                if present:
                    continue
                log.warning("MIDI out %s is gone; the show goes on, waiting for it", port)
                with self._lock:
                    self._out = None
                out.close_port()
                out.delete()
            if self._connect():
                log.info("MIDI out back: %s", self.port_name)

    def send(self, event: MidiEvent) -> bool:
        data = message_bytes(event)
        if data is None:
            return False
        with self._lock:
            out = self._out
            if out is None:
                self.lost += 1
                return False
            try:
                out.send_message(data)
            except (RuntimeError, SystemError, rtmidi.RtMidiError):
                self.lost += 1
                return False
        self.sent += 1
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        with self._lock:
            out, self._out = self._out, None
        if out is not None:
            out.close_port()
            out.delete()
