"""Grains to learn from: 512-sample windows of recordings (hop 256) at the show's rate, quiet ones
dropped, one in ten held out to watch over-fitting.

Which grains are held out is fixed by the seed (a shuffled order), so a run from scratch and a run
from a checkpoint judge the model on the same grains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.pool import load_audio_file
from engine.errors import UserError
from scenes.granolar.vae import GRAIN

HOP = 256
QUIET_DB = -45.0  # a grain whose RMS is under this (dBFS) is dropped
HELD_OUT = 0.1


@dataclass(frozen=True)
class GrainSet:
    """Training and held-out grains, (N, 512) float32 each, and the source of every grain (an index
    into ``sources``)."""

    train: np.ndarray
    held_out: np.ndarray
    train_source: np.ndarray
    held_out_source: np.ndarray
    sources: tuple[str, ...]

    @property
    def held_out_power(self) -> float:
        """Mean squared sample of the held-out grains: the error a model that outputs silence has."""
        return float(np.mean(self.held_out.astype(np.float64) ** 2))


def cut_grains(sound: np.ndarray, quiet_db: float = QUIET_DB) -> np.ndarray:
    """(N, 512) float32 grains of a mono or (frames, channels) recording, hop 256, without the
    quiet ones."""
    mono = sound.mean(axis=1) if sound.ndim == 2 else sound
    if len(mono) < GRAIN:
        return np.zeros((0, GRAIN), np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(mono, GRAIN)[::HOP]
    rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
    return windows[rms > 10 ** (quiet_db / 20)].astype(np.float32)


def load_grains(paths: list[str | Path], sample_rate: int, seed: int = 0) -> GrainSet:
    """Grains of every recording in ``paths`` at ``sample_rate``; UserError (one line) for a file
    that cannot be read, or one with no grain loud enough (silent, or shorter than a grain)."""
    if not paths:
        raise UserError("no recordings to learn from")
    sounds = {str(path): load_audio_file(path, sample_rate) for path in paths}
    return grain_set(sounds, sample_rate, seed, names=[Path(p).stem for p in paths])


def grain_set(sounds: dict[str, np.ndarray], sample_rate: int, seed: int = 0,
              names: list[str] | None = None) -> GrainSet:
    """Grains of recordings already at the show's rate (name -> (frames,) or (frames, channels):
    files, or tables of the sample pool), one in ten held out by ``seed``."""
    grains, sources = [], []
    for index, (name, sound) in enumerate(sounds.items()):
        cut = cut_grains(np.asarray(sound, np.float32))
        if not len(cut):
            raise UserError(f"{name}: no grain to learn from (silent, or shorter than {GRAIN} "
                            f"samples at {sample_rate} Hz)")
        grains.append(cut)
        sources.append(np.full(len(cut), index, np.int32))
    every, source = np.concatenate(grains), np.concatenate(sources)
    if len(every) < 2:  # one is held out: the model needs one more to learn from
        raise UserError(f"{', '.join(sounds)}: one grain to learn from; the model needs two (one is held "
                        f"out): at least {GRAIN + GRAIN // 2} samples of sound at {sample_rate} Hz")
    order = np.random.default_rng(seed).permutation(len(every))
    held = max(1, int(round(HELD_OUT * len(every))))
    held_index, train_index = np.sort(order[:held]), np.sort(order[held:])
    return GrainSet(every[train_index], every[held_index], source[train_index], source[held_index],
                    tuple(names or sounds))
