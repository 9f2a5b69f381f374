"""The instrument interface: what the rack asks of anything that makes sound in the audio process.

An instrument lives in the audio process (or in the offline renderer, which runs the same code).
Between blocks the rack hands it the commands addressed to it; once a block it adds its sound into
its bus, two float64 channel buffers. It never allocates much, never blocks and never waits: it runs
inside the audio callback. Instruments are registered by kind, like scenes, so a setlist's
``[sound.instruments.NAME]`` table says ``kind = "sampler"`` and the rack builds one by that name.

Subclass, give ``kind`` and ``Settings`` (a pydantic model, extra keys forbidden: the setlist's
table for the instrument), and override the hooks the instrument needs; every hook does nothing by
default. Commands are plain numbers (:mod:`engine.audio.command_ring`): the hooks get them decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from engine.audio.pool import SamplePool


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Host:
    """What an instrument may use of the rack that holds it.

    Attributes:
        sample_rate: Hz.
        block_size: frames per block.
        frequencies: (128,) float64, the fundamental of every MIDI note in Hz under the show's
            tuning (the rack replaces the array when the tuning changes; read it at note-on).
        pool: the shared sample pool (tables by slot), or None when the show has none.
    """

    sample_rate: int
    block_size: int
    frequencies: np.ndarray
    pool: SamplePool | None = None


_REGISTRY: dict[str, type[Instrument]] = {}


class Instrument:
    """Base class. Args: settings: an instance of ``Settings``; host: the rack's :class:`Host`."""

    kind: ClassVar[str] = ""
    Settings: ClassVar[type[BaseModel]] = NoSettings
    # Names of the parameters a SET command changes, by index (SET's ``note`` field).
    parameters: ClassVar[tuple[str, ...]] = ()
    # Parameters chosen by name (a cue's ``sound.settings``, a scene's ``set()``): parameter -> its
    # choices; SET carries the name's index.
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Settings that name pool tables (a name, or a list of names; "" = none), checked when the
    # setlist loads and resolved to slots when the rack is built.
    table_settings: ClassVar[tuple[str, ...]] = ("table",)
    # The columns of what :meth:`view` writes (none: the instrument shows nothing).
    view_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parameter_number(cls, parameter: str, value: float | str) -> float:
        """SET's value for ``parameter``: a number as it is, a choice by name as its index.
        ValueError saying what is expected otherwise."""
        if not isinstance(value, str):
            return float(value)
        choices = cls.choices.get(parameter)
        if choices is None:
            raise ValueError(f"a number, not '{value}'")
        if value not in choices:
            raise ValueError(f"one of {', '.join(repr(c) for c in choices)} (or its index 0.."
                             f"{len(choices) - 1}), not '{value}'")
        return float(choices.index(value))

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    def __init__(self, settings: BaseModel, host: Host) -> None:
        self.settings = settings
        self.host = host

    # Commands (between blocks). ``voice`` is an id chosen by the sender (``channel * 128 + note``
    # for played notes); velocity is 0..1.
    def note_on(self, voice: int, note: int, velocity: float) -> None:
        """Start a note; its pitch is ``self.host.frequencies[note]``."""

    def note_off(self, voice: int, note: int) -> None:
        """Release a note."""

    def sustain(self, down: bool) -> None:
        """The sustain pedal went down or up."""

    def all_notes_off(self) -> None:
        """Release every note (they may ring out)."""

    def panic(self) -> None:
        """Silence everything at once (a few milliseconds' fade, never a click)."""

    def set(self, parameter: int, value: float) -> None:
        """Set parameter number ``parameter`` (an index into ``parameters``) to ``value``."""

    def command(self, kind: int, voice: int, note: int, value: float, a: float, b: float,
                c: float) -> None:
        """Any other command kind (the instrument's own: detune, play, stop, queue, ...); kinds an
        instrument does not know are ignored."""

    # Sound.
    def render(self, left: np.ndarray, right: np.ndarray) -> None:
        """Add one block into the two float64 channel buffers (``host.block_size`` frames)."""

    def idle(self) -> bool:
        """Nothing sounds and nothing moves: :meth:`render` would add only zeros."""
        return True

    def sounding(self) -> int:
        """Voices sounding now, for the health report."""
        return 0

    def view(self, out: np.ndarray) -> int:
        """What a scene may draw of the instrument's state now (the granulator: every sounding
        grain): at most ``len(out)`` rows of ``view_fields`` columns written into ``out``
        (float64, no allocation: called after a block in the audio callback); returns the rows
        written."""
        return 0

    def warm_up(self) -> None:
        """Pay first-use costs (compiled kernels loading from their cache) now, before the stream
        opens; by default nothing. Called on a throwaway instance built like the show's."""


def instrument_class(kind: str) -> type[Instrument]:
    """The instrument class registered under ``kind``: the engine's, a loaded piece's, or else one
    an installed piece brings (its module imported now, found by kind: :mod:`engine.pieces`).
    KeyError when there is none."""
    import engine.audio.instruments  # noqa: F401  the engine's own register on import

    if kind not in _REGISTRY:
        from engine import pieces

        pieces.load_instrument(kind)
    return _REGISTRY[kind]


def known_instruments() -> list[str]:
    """Every kind a rack can play: registered, or brought by an installed piece."""
    import engine.audio.instruments  # noqa: F401
    from engine import pieces

    return sorted(set(_REGISTRY) | set(pieces.installed_instruments()))
