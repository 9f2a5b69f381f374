"""What the overtone mixer sounds like: every setting, with its unit and default.

The same model is the ``[audio]`` table of a setlist (which adds the device fields) and the
configuration handed to the audio process as JSON, so a value is validated once, in one place.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


# MixerConfig's fields that belong to the rack as a whole rather than to the overtone instrument.
RACK_FIELDS = ("sample_rate", "block_size", "tuning", "tuning_root", "reference_hz", "reference_note",
               "overtone_gain_db", "piano_gain_db", "master_gain_db")


class MixerConfig(BaseModel):
    """Synth settings. Times in seconds, gains in dB, frequencies in Hz.

    Attributes:
        sample_rate: Hz.
        block_size: frames per block (the callback period when live).
        polyphony: most voices sounding at once; a note beyond it steals the oldest released voice
            (else the oldest voice), which fades out in 5 ms.
        partials: harmonics per voice (1 = fundamental only); partial k >= 2 sounds at k*f*(1+d).
        rolloff: partial k's amplitude is k**-rolloff (before normalising the voice to peak 1).
        level: peak amplitude of one voice at full velocity (the original used 0.4).
        velocity_sensitivity: 0 = every note at ``level``; 1 = amplitude follows (velocity/127)**2.
        envelope: "percussive" (attack then release, note-off ignored, as the original's Env.perc)
            or "adsr" (held while the key or the sustain pedal is down).
        attack, decay, sustain, release: envelope segments (sustain is a level 0..1, adsr only).
        bass_release: release of notes below ``bass_below`` (the original: 8 s below MIDI 60).
        curve: curvature of envelope segments (SuperCollider's convention; -4 = Env.perc's).
        amplitude_coupling: the original's partial amplitude 2 - (1 + d) (louder when flattened).
        detune_glide: seconds for a new detune to be (about 63 %) reached; 0 = within one block.
        spread: stereo width by pitch, 0 = mono centre, 1 = lowest note hard left.
        tuning: "equal" (12-TET), "just" or "pythagorean" (relative to ``tuning_root``), or twelve
            cent offsets from equal temperament for C, C#, ... B.
        reference_hz: frequency of ``reference_note`` (A4 = MIDI 69 = 440 Hz).
        overtone_gain_db, piano_gain_db, master_gain_db: bus gains; the master feeds a soft limiter.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = Field(48000, ge=8000, le=192000, description="Hz")
    block_size: int = Field(256, ge=16, le=8192, description="frames per callback")
    polyphony: int = Field(64, ge=1, le=512)
    partials: int = Field(4, ge=1, le=16)
    rolloff: float = Field(1.0, ge=0.0, le=4.0)
    level: float = Field(0.4, gt=0.0, le=1.0)
    velocity_sensitivity: float = Field(1.0, ge=0.0, le=1.0)
    envelope: Literal["percussive", "adsr"] = "percussive"
    attack: float = Field(0.1, ge=0.001, le=10.0, description="seconds")
    decay: float = Field(0.3, ge=0.001, le=30.0, description="seconds (adsr)")
    sustain: float = Field(0.7, ge=0.0, le=1.0, description="level 0..1 (adsr)")
    release: float = Field(2.0, ge=0.005, le=60.0, description="seconds")
    bass_release: float = Field(8.0, ge=0.005, le=60.0, description="seconds")
    bass_below: int = Field(60, ge=0, le=128, description="MIDI note")
    curve: float = Field(-4.0, ge=-20.0, le=20.0)
    amplitude_coupling: bool = False
    detune_glide: float = Field(0.05, ge=0.0, le=10.0, description="seconds")
    spread: float = Field(0.8, ge=0.0, le=1.0)
    tuning: Literal["equal", "just", "pythagorean"] | list[float] = "equal"
    tuning_root: int = Field(0, ge=0, le=11, description="pitch class of the just/pythagorean root")
    reference_hz: float = Field(440.0, gt=100.0, lt=1000.0, description="Hz")
    reference_note: int = Field(69, ge=0, le=127)
    overtone_gain_db: float = Field(0.0, ge=-120.0, le=24.0)
    piano_gain_db: float = Field(-6.0, ge=-120.0, le=24.0)
    master_gain_db: float = Field(0.0, ge=-120.0, le=12.0, description="dB on the master bus")

    @field_validator("tuning", mode="before")
    @classmethod
    def _known_tuning(cls, value):
        names = ("equal", "just", "pythagorean")
        if isinstance(value, str) and value not in names:
            raise ValueError(f"expected 'equal', 'just', 'pythagorean' or twelve cent offsets, got '{value}'")
        if not isinstance(value, (str, list)) or (isinstance(value, list) and not all(
                isinstance(cents, (int, float)) and not isinstance(cents, bool) for cents in value)):
            raise ValueError("expected 'equal', 'just', 'pythagorean' or a list of twelve cent offsets")
        return value

    @field_validator("tuning")
    @classmethod
    def _twelve_offsets(cls, value):
        if isinstance(value, list) and len(value) != 12:
            raise ValueError("a tuning table is twelve cent offsets, for C, C#, D ... B")
        if isinstance(value, list) and any(abs(cents) > 1200 for cents in value):
            raise ValueError("tuning offsets are cents between -1200 and 1200")
        return value

    def release_for(self, note: int) -> float:
        return self.bass_release if note < self.bass_below else self.release
