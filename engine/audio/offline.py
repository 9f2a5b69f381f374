"""The offline renderer: the rack run block by block in virtual time, for renders and tests.

Commands are stamped with the show time at the end of the tick that sent them (when the show has
taken in the tick's inputs, and from when the tick's picture shows) and take effect at the first
block that starts at or after that time, the way a live callback picks up what arrived before it
ran. So a note's sound starts within a block after the end of the tick that delivered it, and the
picture of that tick shows within a video frame after it: the two are within one video frame of
each other at any frame rate. The same commands with the same stamps give bit-identical audio.
Table writes are stamped the same way: the data goes into the table's back buffer and is swapped in
at that block, so a render that rewrites tables is as deterministic as one that does not.
"""

from __future__ import annotations

import bisect

import math
import wave
from pathlib import Path

import numpy as np

from engine.audio import command_ring as cmd
from engine.audio.config import MixerConfig
from engine.audio.control import AudioOut
from engine.audio.rack import Rack, RackConfig, legacy_rack_config
from engine.audio.shared import TAP_FRAMES
from engine.errors import UserError


class OfflineAudio(AudioOut):
    """Args: config: the rack (or, for the overtone mixer alone, its settings, with ``piano`` to
    mix the piano in); keep: keep the rendered blocks in memory (:meth:`samples`), else they are
    only handed to ``sink`` (called with each (N, 2) float32 block); pool: the sample pool the
    rack's instruments read; input_sound: the audio input of the show, (frames, 2) float32 at
    the show's rate (a recording standing in for the microphone), or None."""

    def __init__(self, config: RackConfig | MixerConfig, piano: bool = False, keep: bool = True,
                 sink=None, pool=None, input_sound: np.ndarray | None = None) -> None:
        rack = legacy_rack_config(config, piano) if isinstance(config, MixerConfig) else config
        super().__init__(rack, pool)
        self.mixer = Rack(rack, pool)
        self.sample_rate = rack.sample_rate
        self.block_size = rack.block_size
        self.rendered = 0  # frames
        self.keep = keep
        self.sink = sink
        self.input_sound = input_sound
        self._pending: list[tuple] = []
        self._pending_at: list[tuple[float, int]] = []  # (stamp, position) of each, sorted
        self._blocks: list[np.ndarray] = []
        self._tap = np.zeros((TAP_FRAMES, 4), np.float32)  # mix, input: as the live tap

    def _send(self, kind, voice, note, value, target, a, b, c, at):
        self._queue(at, (self.show_time, kind, voice, note, value, target, a, b, c))

    def _write_table(self, slot: int, data: np.ndarray) -> bool:
        self._queue(self.position, (self.show_time, "write", slot, data.copy()))
        return True

    def _queue(self, at: int, command: tuple) -> None:
        """Pending commands in the order they act: by show time, then by input position (a
        command sent ``at`` an earlier position goes after that position's others)."""
        index = bisect.bisect_right(self._pending_at, (command[0], at))
        self._pending.insert(index, command)
        self._pending_at.insert(index, (command[0], at))

    def listen(self, seconds: float, source: str = "mix") -> np.ndarray:
        if source not in ("mix", "input"):
            raise ValueError(f"unknown sound '{source}' (mix or input)")
        count = max(0, min(int(round(seconds * self.sample_rate)), self.rendered, TAP_FRAMES))
        rows = np.arange(self.rendered - count, self.rendered) % TAP_FRAMES
        return self._tap[rows, 0:2] if source == "mix" else self._tap[rows, 2:4]

    def heard_since(self, position: int, source: str = "mix") -> tuple[np.ndarray, int]:
        from engine.audio.shared import tap_rows

        if source not in ("mix", "input"):
            raise ValueError(f"unknown sound '{source}' (mix or input)")
        start = max(int(position), self.rendered - TAP_FRAMES)
        return tap_rows(self._tap, start, self.rendered, slice(0, 2) if source == "mix" else slice(2, 4)), \
            self.rendered

    def _view(self, slot: int, columns: int) -> np.ndarray:
        from engine.audio.shared import VIEW_ROWS

        if self.mixer.broken[slot]:
            return np.zeros((0, columns))
        rows = np.zeros((VIEW_ROWS, columns))
        return rows[:self.mixer.instruments[slot].view(rows)]

    def advance(self, show_time: float) -> None:
        """Render every whole block that starts before ``show_time`` seconds."""
        until = math.ceil(show_time * self.sample_rate - 1e-6)
        while self.rendered < until:
            self._render_block()

    def _render_block(self) -> None:
        start = self.rendered / self.sample_rate
        due = 0
        while due < len(self._pending) and self._pending[due][0] <= start + 1e-9:
            due += 1
        for _stamp, kind, *fields in self._pending[:due]:
            if kind == "write":
                slot, data = fields
                self.pool.write_back(slot, data)
                self.pool.request_swap(slot)
                self.mixer.apply(cmd.SWAP, slot, target=cmd.RACK)
            else:
                voice, note, value, target, a, b, c = fields
                self.mixer.apply(kind, voice, note, value, target, a, b, c)
        del self._pending[:due], self._pending_at[:due]
        block = self.mixer.render()
        rows = np.arange(self.rendered, self.rendered + self.block_size) % TAP_FRAMES
        self._tap[rows, 0:2] = block
        if self.input_sound is not None:
            heard = self.input_sound[self.rendered:self.rendered + self.block_size]
            self._tap[rows[:len(heard)], 2:4] = heard
            self._tap[rows[len(heard):], 2:4] = 0.0
        if self.keep:
            self._blocks.append(block.copy())
        if self.sink is not None:
            self.sink(block)
        self.rendered += self.block_size

    def samples(self) -> np.ndarray:
        """Everything rendered so far, (frames, 2) float32."""
        if not self._blocks:
            return np.zeros((0, 2), np.float32)
        return np.concatenate(self._blocks)

    def write_wav(self, path: Path) -> None:
        """Write what was rendered as 16-bit stereo PCM WAV."""
        writer = WavWriter(path, self.sample_rate)
        writer(self.samples())
        writer.close()

    def close(self) -> None:
        if self.sink is not None and hasattr(self.sink, "close"):
            self.sink.close()


class WavWriter:
    """A block sink writing 16-bit stereo PCM WAV as blocks arrive (long renders stay small in
    memory). Unwritable paths are bad input: :class:`UserError` when created."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        try:
            self._handle = open(path, "wb")  # opened here: wave.open leaves a noisy half-object
        except OSError as error:
            raise UserError(f"cannot write {path}: {error.strerror or error}") from None
        self._file = wave.open(self._handle, "wb")
        self._file.setnchannels(2)
        self._file.setsampwidth(2)
        self._file.setframerate(sample_rate)
        self.path = path

    def __call__(self, block: np.ndarray) -> None:
        pcm = np.clip(np.round(block * 32767.0), -32768, 32767).astype("<i2")
        self._file.writeframes(pcm.tobytes())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._handle.close()
            self._file = None
