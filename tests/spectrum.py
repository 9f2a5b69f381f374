"""Reading sound back in tests: spectral peaks, the steepest step, WAV files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


class Spectrum:
    """Amplitude spectrum of a stretch of sound (Hann window, zero-padded to 0.2 Hz bins or finer): a
    steady sinusoid of amplitude A shows as a peak of height A at its frequency."""

    def __init__(self, signal: np.ndarray, rate: int = 48000) -> None:
        window = np.hanning(len(signal))
        size = max(1 << 18, 16 * len(signal))
        self.magnitude = np.abs(np.fft.rfft(signal * window, size)) * 2 / window.sum()
        self.bin_hz = rate / size

    def peak(self, near_hz: float, search_hz: float = 20.0) -> tuple[float, float]:
        """(frequency in Hz, amplitude) of the strongest component within ``search_hz``, from a
        parabola through the log magnitudes around the largest bin."""
        low = int((near_hz - search_hz) / self.bin_hz)
        high = int((near_hz + search_hz) / self.bin_hz) + 1
        top = low + int(np.argmax(self.magnitude[low:high]))
        a, b, c = np.log(self.magnitude[top - 1:top + 2] + 1e-30)
        offset = 0.5 * (a - c) / (a - 2 * b + c)
        return (top + offset) * self.bin_hz, float(np.exp(b - 0.25 * (a - c) * offset))

    def level(self, at_hz: float) -> float:
        """Largest amplitude within 5 Hz of ``at_hz``."""
        low, high = int((at_hz - 5) / self.bin_hz), int((at_hz + 5) / self.bin_hz) + 1
        return float(self.magnitude[low:high].max())


def peak_near(signal: np.ndarray, rate: int, target: float, search: float = 15.0) -> float:
    """Frequency (Hz) of the strongest component within ``search`` Hz of ``target``."""
    return Spectrum(signal, rate).peak(target, search)[0]


def max_step(signal: np.ndarray) -> float:
    """Largest sample-to-sample jump: a click shows as a step far above the tone's own."""
    return float(np.max(np.abs(np.diff(signal, axis=0))))


def read_wav(path: Path) -> tuple[np.ndarray, wave._wave_params]:
    """A 16-bit WAV file as (frames, channels) int16 samples, and its header."""
    with wave.open(str(path)) as file:
        params = file.getparams()
        pcm = np.frombuffer(file.readframes(params.nframes), "<i2").reshape(-1, params.nchannels)
    return pcm, params
