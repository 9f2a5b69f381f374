"""What the ear learns from: scaleograms of recordings and of piano performances rendered with a
sampled piano, 4-s clips cut from them at random, the last tenth of every source held out.

A recording's scaleogram is computed once (:func:`scenes.ear.network.scaleogram_numpy`); a clip is
a slice of it (the causal scaleogram of a whole recording, so a clip's first frames already hear
what came before it).

Piano audio comes from the real performances in MIDI, rendered by Debian's fluidsynth with the
General MIDI soundfont (fluid-soundfont-gm), which the Makefile installs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.pool import load_audio_file
from engine.errors import UserError
from scenes.ear.network import CLIP_FRAMES, RATE, scaleogram_numpy

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = ROOT / "assets" / "audio" / "grains"
PERFORMANCES = ROOT / "assets" / "midi" / "performances"
SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/default-GM.sf2"))
HELD_OUT = 0.1


def default_recordings() -> list[Path]:
    """The bundled recordings a clip fits in (4 s or longer): cello, ocean, voice."""
    return [RECORDINGS / name for name in ("smstools_cello-phrase.wav", "smstools_ocean.wav",
                                           "smstools_singing-female.wav")]


def default_performances() -> list[Path]:
    return sorted(PERFORMANCES.glob("*.mid"))


@dataclass(frozen=True)
class Spectra:
    """Every source's scaleogram frames end to end, (N, 96) float32, and where a 4-s training clip
    or held-out clip may start (indices into the frames, never across two sources)."""

    frames: np.ndarray
    train_starts: np.ndarray
    held_out_starts: np.ndarray
    sources: tuple[str, ...]
    seconds: float


def render_piano(midi: Path, seconds: float | None, folder: Path) -> np.ndarray:
    """A MIDI performance rendered with the sampled piano, mono at 22,050 Hz (its first ``seconds``)."""
    if shutil.which("fluidsynth") is None:
        raise UserError("fluidsynth is not installed (make setup installs it: apt install fluidsynth "
                        "fluid-soundfont-gm)")
    font = next((f for f in SOUNDFONTS if f.exists()), None)
    if font is None:
        raise UserError("no General MIDI soundfont (make setup installs fluid-soundfont-gm)")
    out = folder / (midi.stem + ".wav")
    done = subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-F", str(out), "-r", str(RATE),
                           str(font), str(midi)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not out.exists():
        raise UserError(f"{midi}: fluidsynth could not render it ({done.stderr.strip()[:200]})")
    sound = load_audio_file(out, RATE)
    mono = sound.mean(axis=1) if sound.ndim == 2 else sound
    return mono[: int(seconds * RATE)] if seconds else mono


def load_spectra(recordings: list[Path], performances: list[Path], piano_seconds: float | None = 120.0,
                 seed: int = 0) -> Spectra:
    """Scaleograms of ``recordings`` (audio files) and ``performances`` (MIDI, rendered); UserError
    (one line) for a file that cannot be read or is shorter than two clips."""
    sounds: dict[str, np.ndarray] = {}
    for path in recordings:
        sound = load_audio_file(path, RATE)
        sounds[Path(path).stem] = sound.mean(axis=1) if sound.ndim == 2 else sound
    if performances:
        with tempfile.TemporaryDirectory(prefix="ear-piano-") as folder:
            for midi in performances:
                if not Path(midi).is_file():
                    raise UserError(f"{midi}: no such MIDI file")
                sounds[Path(midi).stem] = render_piano(Path(midi), piano_seconds, Path(folder))
    if not sounds:
        raise UserError("nothing to learn from: give recordings or performances")
    return spectra_of(sounds, seed)


def spectra_of(sounds: dict[str, np.ndarray], seed: int = 0) -> Spectra:
    """Scaleograms of mono sounds at 22,050 Hz (name -> samples)."""
    frames, train, held, offset, total = [], [], [], 0, 0.0
    for name, sound in sounds.items():
        spectrum = scaleogram_numpy(np.asarray(sound, np.float32))
        count = len(spectrum)
        if count < CLIP_FRAMES:
            raise UserError(f"{name}: too short to learn from ({len(sound) / RATE:.1f} s; a clip is "
                            f"{CLIP_FRAMES * 512 / RATE:.1f} s)")
        # A source of three clips or more gives its last tenth (at least a clip) to the held-out set.
        held_frames = max(CLIP_FRAMES, int(HELD_OUT * count)) if count >= 3 * CLIP_FRAMES else 0
        boundary = count - held_frames
        train.append(offset + np.arange(0, boundary - CLIP_FRAMES + 1))
        if held_frames:
            held.append(offset + np.arange(boundary, count - CLIP_FRAMES + 1))
        frames.append(spectrum)
        offset += count
        total += len(sound) / RATE
    if not held:
        raise UserError(f"no source is long enough to hold some out ({3 * CLIP_FRAMES * 512 / RATE:.0f} s "
                        "or more): add a longer recording or a performance")
    return Spectra(np.concatenate(frames), np.concatenate(train).astype(np.int32),
                   np.concatenate(held).astype(np.int32), tuple(sounds), total)
