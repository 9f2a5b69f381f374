"""A JACK client that listens to what the engine plays and can play MIDI at exact frames.

Used by the audio tests and benchmarks: it records every output port matching a pattern (by
default PortAudio's, which the audio process registers) into memory, stamped with JACK frame
times, and reconnects by itself when a new matching port appears (a restarted audio process).
MIDI written through :meth:`send_midi` goes out in the next cycle at frame offset 0, and its frame
time is remembered, so note-to-sound latency is measured in frames on JACK's own clock.

Python runs in JACK's process thread here; that is acceptable for a measuring client, never for
the engine (and it can make JACK miss cycles on a busy machine: the soak benchmark counts xruns
with a port-less client instead).
"""

from __future__ import annotations

import re
import threading
import time

import jack
import numpy as np


class JackRecorder:
    """Args: seconds: capture length kept (older audio is overwritten); pattern: regex of the
    output ports to record (two ports: the first in name order is left, the second right);
    midi: register a MIDI output port ``NAME:midi_out`` (for a reader that connects itself)."""

    def __init__(self, seconds: float = 60.0, pattern: str = r"^PortAudio.*:out_[01]$",
                 name: str = "recorder", midi: bool = False) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.rate = self.client.samplerate
        self.pattern = re.compile(pattern)
        self.ins = [self.client.inports.register(f"in_{side}") for side in ("l", "r")]
        self.midi_out = self.client.midi_outports.register("midi_out") if midi else None
        self.capacity = int(seconds * self.rate)
        self.buffer = np.zeros((self.capacity, 2), np.float32)
        self.written = 0  # frames recorded
        self._midi_pending: list[bytes] = []
        self.midi_sent_at: list[int] = []  # JACK frame time each sent message went out at
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.xruns = 0  # cycles JACK reported missed, by any client, since this one started
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _process(self, frames: int) -> None:
        start = self.client.last_frame_time
        offset = (self.written) % self.capacity
        for channel, port in enumerate(self.ins):
            data = port.get_array()
            end = offset + frames
            if end <= self.capacity:
                self.buffer[offset:end, channel] = data
            else:
                split = self.capacity - offset
                self.buffer[offset:, channel] = data[:split]
                self.buffer[:end - self.capacity, channel] = data[split:]
        self.written += frames
        if self.midi_out is not None:
            self.midi_out.clear_buffer()
            with self._lock:
                pending, self._midi_pending = self._midi_pending, []
            for message in pending:
                self.midi_out.write_midi_event(0, message)
                self.midi_sent_at.append(start)

    def _xrun(self, _delay_us: float) -> None:
        self.xruns += 1

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._connect_new()
            except jack.JackError:
                pass
            time.sleep(0.02)

    def _connect_new(self) -> None:
        sources = sorted(p.name for p in self.client.get_ports(is_output=True, is_audio=True)
                         if self.pattern.search(p.name))
        for source, port in zip(sources, self.ins):
            if source not in [c.name for c in self.client.get_all_connections(port)]:
                self.client.connect(source, port)

    def connected(self) -> bool:
        """Both inputs are connected (one side alone would record zeros at the start of the other)."""
        return all(self.client.get_all_connections(port) for port in self.ins)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected():
                return True
            time.sleep(0.01)
        return False

    def send_midi(self, *message: int) -> None:
        with self._lock:
            self._midi_pending.append(bytes(message))

    def mark(self) -> int:
        """Frames recorded so far: pass to :meth:`since` to get what was heard after this."""
        return self.written

    def since(self, mark: int) -> np.ndarray:
        """(frames, 2) audio recorded after ``mark`` (a copy)."""
        end = self.written
        count = min(end - mark, self.capacity)
        index = np.arange(end - count, end) % self.capacity
        return self.buffer[index].copy()

    def close(self) -> None:
        self._stop.set()
        self._watcher.join(timeout=1.0)
        self.client.deactivate()
        self.client.close()
