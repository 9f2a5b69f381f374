"""What the overtone voice sounds like: every setting, with its unit and default (the paper's sound).

The table of an ``overtones`` instrument in ``[sound.instruments.NAME]``; in a setlist without a
``[sound]`` table, the same keys written flat in ``[audio]``, as they always were (the legacy rack
hands them to the instrument of kind "overtones": :func:`engine.audio.rack.legacy_rack_config`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OvertoneSettings(BaseModel):
    """Times in seconds, gains as linear amplitudes.

    Attributes:
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
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

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

    def release_for(self, note: int) -> float:
        """Seconds the release of ``note`` takes."""
        return self.bass_release if note < self.bass_below else self.release
