"""The sound settings of a setlist's ``[audio]`` table that belong to the rack as a whole: rate,
block, tuning, bus gains; every one with its unit and default.

The same model is the ``[audio]`` table of a setlist (which adds the device fields) and the
configuration of the legacy rack (:func:`engine.audio.rack.legacy_rack_config`), the rack a setlist
without a ``[sound]`` table gets: the instrument of kind ``overtones`` (the first piece's voice)
and the piano. Such a setlist has always written the overtone voice's settings flat in ``[audio]``
(``partials = 4``), so any other key of the table is kept here as it was written, for that
instrument, whose own model (the piece's, found by kind) validates it when the setlist loads
(:func:`engine.setlist.load_setlist`) and when the rack is built. The engine names the kind, never
the piece's module.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LEGACY_INSTRUMENT = "overtones"  # the kind (and the name, and the bus) of the legacy rack's voice


class MixerConfig(BaseModel):
    """Rack-wide sound settings. Gains in dB, frequencies in Hz.

    Attributes:
        sample_rate: Hz.
        block_size: frames per block (the callback period when live).
        tuning: "equal" (12-TET), "just" or "pythagorean" (relative to ``tuning_root``), or twelve
            cent offsets from equal temperament for C, C#, ... B.
        reference_hz: frequency of ``reference_note`` (A4 = MIDI 69 = 440 Hz).
        overtone_gain_db, piano_gain_db: the legacy rack's two bus gains ("overtones", "piano").
        master_gain_db: the master bus, which feeds a soft limiter.

    Any other key: a setting of the legacy rack's ``overtones`` instrument
    (:meth:`instrument_settings`), checked by that instrument's model, not here.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    sample_rate: int = Field(48000, ge=8000, le=192000, description="Hz")
    block_size: int = Field(256, ge=16, le=8192, description="frames per callback")
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
        if isinstance(value, list) and any(not abs(cents) <= 1200 for cents in value):  # NaN too
            raise ValueError("tuning offsets are cents between -1200 and 1200")
        return value

    def instrument_settings(self) -> dict[str, Any]:
        """The keys beyond the rack-wide ones, as written: the legacy rack's ``overtones``
        instrument's settings (unchecked here)."""
        return dict(self.model_extra or {})
