"""Reading sound back in tests: where the spectral peaks are and how steep the steps are."""

from __future__ import annotations

import numpy as np


def peak_near(signal: np.ndarray, rate: int, target: float, search: float = 15.0,
              pad: int = 16) -> float:
    """Frequency (Hz) of the strongest component within ``search`` Hz of ``target``.

    Hann window, zero padding ``pad`` times and a parabolic fit on the log magnitude: about
    0.05 Hz resolution from one second of a steady tone.
    """
    windowed = (signal - signal.mean()) * np.hanning(len(signal))
    size = pad * len(signal)
    spectrum = np.abs(np.fft.rfft(windowed, size))
    bin_hz = rate / size
    low, high = int((target - search) / bin_hz), int((target + search) / bin_hz) + 1
    peak = low + int(np.argmax(spectrum[low:high]))
    a, b, c = np.log(spectrum[peak - 1:peak + 2] + 1e-30)
    offset = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
    return (peak + offset) * bin_hz


def level_near(signal: np.ndarray, rate: int, target: float, search: float = 15.0) -> float:
    """Peak magnitude of the windowed spectrum within ``search`` Hz of ``target`` (relative units)."""
    windowed = (signal - signal.mean()) * np.hanning(len(signal))
    spectrum = np.abs(np.fft.rfft(windowed))
    freqs = np.fft.rfftfreq(len(signal), 1.0 / rate)
    near = (freqs > target - search) & (freqs < target + search)
    return float(spectrum[near].max())


def max_step(signal: np.ndarray) -> float:
    """Largest sample-to-sample jump: a click shows as a step far above the tone's own."""
    return float(np.max(np.abs(np.diff(signal, axis=0))))
