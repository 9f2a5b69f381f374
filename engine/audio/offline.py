"""The offline renderer: the mixer run block by block in virtual time, for renders and tests.

Commands are stamped with the show time at the end of the tick that sent them (when the show has
taken in the tick's inputs, and from when the tick's picture shows) and take effect at the first
block that starts at or after that time, the way a live callback picks up what arrived before it
ran. So a note's sound starts within a block after the end of the tick that delivered it, and the
picture of that tick shows within a video frame after it: the two are within one video frame of
each other at any frame rate. The same commands with the same stamps give bit-identical audio.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from engine.audio.config import MixerConfig
from engine.audio.control import AudioOut
from engine.audio.mixer import OvertoneMixer
from engine.errors import UserError


class OfflineAudio(AudioOut):
    """Args: config: synth settings; piano: mix the piano in; keep: keep the rendered blocks in
    memory (:meth:`samples`), else they are only handed to ``sink`` (called with each (N, 2)
    float32 block)."""

    def __init__(self, config: MixerConfig, piano: bool = False, keep: bool = True,
                 sink=None) -> None:
        super().__init__()
        self.mixer = OvertoneMixer(config, piano=piano)
        self.sample_rate = config.sample_rate
        self.block_size = config.block_size
        self.rendered = 0  # frames
        self.keep = keep
        self.sink = sink
        self._pending: list[tuple[float, int, int, int, float]] = []
        self._blocks: list[np.ndarray] = []

    def _send(self, kind, voice, note, value):
        self._pending.append((self.show_time, kind, voice, note, value))

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
        for _stamp, kind, voice, note, value in self._pending[:due]:
            self.mixer.apply(kind, voice, note, value)
        del self._pending[:due]
        block = self.mixer.render()
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
