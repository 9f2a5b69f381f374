"""Tunings: the fundamental of every MIDI note, in Hz.

Equal temperament by default (A4 = MIDI 69 = 440 Hz). Just intonation and Pythagorean tuning are
given as cent offsets from equal temperament relative to a root pitch class, and any twelve
offsets may be supplied instead (the performer's own temperament).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# 5-limit just ratios and Pythagorean (3-limit) ratios for the twelve degrees above the root.
_JUST = [1, 16 / 15, 9 / 8, 6 / 5, 5 / 4, 4 / 3, 45 / 32, 3 / 2, 8 / 5, 5 / 3, 9 / 5, 15 / 8]
_PYTHAGOREAN = [1, 256 / 243, 9 / 8, 32 / 27, 81 / 64, 4 / 3, 729 / 512, 3 / 2, 128 / 81, 27 / 16,
                16 / 9, 243 / 128]


def _cents_from_ratios(ratios: Sequence[float]) -> list[float]:
    return [1200 * math.log2(ratio) - 100 * degree for degree, ratio in enumerate(ratios)]


def cent_offsets(tuning: str | Sequence[float], root: int = 0) -> list[float]:
    """Cents away from equal temperament for pitch classes C, C#, ... B."""
    if isinstance(tuning, str):
        if tuning == "equal":
            return [0.0] * 12
        table = {"just": _JUST, "pythagorean": _PYTHAGOREAN}.get(tuning)
        if table is None:
            raise ValueError(f"unknown tuning '{tuning}' (equal, just, pythagorean or 12 offsets)")
        by_degree = _cents_from_ratios(table)
        return [by_degree[(pitch_class - root) % 12] for pitch_class in range(12)]
    offsets = [float(cents) for cents in tuning]
    if len(offsets) != 12:
        raise ValueError("a tuning table is twelve cent offsets")
    return offsets


def note_frequencies(tuning: str | Sequence[float] = "equal", root: int = 0,
                     reference_hz: float = 440.0, reference_note: int = 69) -> np.ndarray:
    """Fundamentals of MIDI notes 0..127 in Hz (float64, shape (128,)).

    The reference note always sounds at ``reference_hz``; every other pitch class sits at its
    offset relative to the reference's offset, so A4 stays 440 Hz in every tuning.
    """
    return frequencies_from_offsets(cent_offsets(tuning, root), reference_hz, reference_note)


def frequencies_from_offsets(offsets: Sequence[float], reference_hz: float = 440.0,
                             reference_note: int = 69) -> np.ndarray:
    """Like :func:`note_frequencies`, from twelve cent offsets (C .. B) from equal temperament."""
    offsets = np.asarray(offsets, dtype=np.float64)
    notes = np.arange(128)
    cents = 100.0 * (notes - reference_note) + offsets[notes % 12] - offsets[reference_note % 12]
    return reference_hz * 2.0 ** (cents / 1200.0)
