"""Harmonic/percussive separation of a sample table, done when the show loads (librosa's median
filtering HPSS, Fitzgerald 2010, with soft masks).

librosa is imported on the first call only, so a show whose samples ask for no separation starts
as fast as before. Never called from the audio callback: a few seconds of audio take about a
second to separate.
"""

from __future__ import annotations

import numpy as np

HARMONIC = "harmonic"
PERCUSSIVE = "percussive"


def part_names(name: str) -> tuple[str, str]:
    """The pool's names for table ``name``'s harmonic and percussive parts."""
    return f"{name}.{HARMONIC}", f"{name}.{PERCUSSIVE}"


def separate(data: np.ndarray, margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``data`` ((frames, channels) float32, any rate) -> its harmonic and percussive parts, each
    of the same shape and dtype, channel by channel.

    ``margin`` (>= 1) is librosa's separation margin: at 1 the two soft masks sum to one, so
    harmonic + percussive gives the input back (up to the STFT round trip); above 1 each part
    keeps only what is clearly its own, and the rest (a residual) is in neither. STFT of 2048
    samples, hop 512, median filters 31 frames long and 31 bins tall (librosa's defaults).
    ValueError for a margin below 1 or audio that is not finite.
    """
    if not margin >= 1.0:
        raise ValueError(f"an HPSS margin must be >= 1, not {margin}")
    import librosa

    data = np.asarray(data, np.float32)
    if not np.isfinite(data).all():
        raise ValueError("harmonic/percussive separation needs finite audio (this holds NaN or "
                         "infinite samples)")
    # librosa takes channels first, (channels, frames), and gives each part back at this length.
    harmonic, percussive = librosa.effects.hpss(np.ascontiguousarray(data.T), margin=float(margin))
    if not (np.isfinite(harmonic).all() and np.isfinite(percussive).all()):
        raise ValueError(f"the separation at margin {margin} gave samples that are not finite")
    return (np.ascontiguousarray(harmonic.T, dtype=np.float32),
            np.ascontiguousarray(percussive.T, dtype=np.float32))


if __name__ == "__main__":  # `make setup`: librosa compiles (numba, cached) once, not at a show's load
    separate(np.zeros((8192, 1), np.float32))
