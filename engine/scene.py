"""Scenes: one part of a performance, as a class with hooks overridden by name.

Subclass :class:`Scene`, give it a ``name`` and override only the hooks the part needs; every hook
does nothing by default. Naming the class registers it: setlists refer to scenes by that name. A
scene declares its parameters as a pydantic model (``Params``); the setlist's ``params`` table for a
cue is validated against it before any device opens. State lives on the scene (dataclasses and
arrays it owns); show-wide services come through :class:`SceneContext`.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from engine.audio.control import AudioOut, NoAudio
from engine.midi import MidiEvent, NoteOn, PedalState

if TYPE_CHECKING:
    import moderngl

    from engine.video_in import VideoTexture

    from engine.shaders import ShaderLibrary


class SceneParams(BaseModel):
    """Base for scene parameter models: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class SceneContext:
    """What a scene may use from the show.

    Attributes:
        gl: the moderngl context (None in unit tests without OpenGL).
        size: show resolution in pixels (width, height); scenes draw into a framebuffer of this size.
        shaders: loads GLSL programs from shaders/ by name (None without OpenGL).
        cue: the id of the cue this scene instance plays ("" outside a show).
        seed: the show's random seed; :meth:`seed_for` combines it with the cue id.
        pedals: sustain / sostenuto / soft pedal positions, updated before each event is dispatched.
        log: the show's logger.
        audio: the show's sound, live or offline (docs/audio.md): notes and detunes, bus gains,
            any instrument of the rack by name (``audio.instrument("sampler").play(...)``), the
            sample pool's tables (``write_table``) and the show's own sound (``listen``).
        video: the camera (or its stand-in file) as a texture, updated before every frame
            (``video.texture``, ``video.level``), or None when the show has no video input.
        paced: True when the show runs in virtual time (render, replay): a background trainer
            (:class:`engine.learners.Trainer`) then advances a fixed number of steps per tick, so
            renders are identical; False live, where it trains as fast as it can beside the show.
        trainers: the trainers made by :meth:`trainer`, by name (the show ticks them).
        replayed_steps: in a replay, the live show's step count for a trainer at a tick
            (``replayed_steps(key)(tick)``), or None for a trainer the log does not know.
        folder: the setlist's folder; :meth:`path` resolves a path a parameter gives against it.
        osc_now: live with OSC in, ``osc_now(address, handler)`` calls ``handler(message)`` on the
            OSC listener's thread as soon as a message to ``address`` arrives (the tick still gets
            it as usual, and a replay only that way): for what must not wait for a tick. None
            when the show has no OSC in or runs paced. The handler runs for every cue's scene
            that asked, current or not, and must be quick and never block.
        source: the cue's note source (:class:`engine.note_sources.NoteSource`), or None: the
            scene may show what it writes (its ``seed``, its latest writing).
    """

    cue: str = ""
    gl: moderngl.Context | None = None
    size: tuple[int, int] = (1280, 720)
    shaders: ShaderLibrary | None = None
    seed: int = 0
    pedals: PedalState = field(default_factory=PedalState)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("showrunner.scene"))
    audio: AudioOut = field(default_factory=lambda: NoAudio())
    video: VideoTexture | None = None
    outbox: list = field(default_factory=list)  # what the scene emitted this tick (the show's)
    paced: bool = False  # the show runs in virtual time (render, replay): trainers advance in ticks
    trainers: dict[str, Any] = field(default_factory=dict)
    replayed_steps: Callable[[str], Callable[[int], int] | None] | None = None
    folder: Path = field(default_factory=lambda: Path("."))
    osc_now: Callable[[str, Callable[[Any], None]], None] | None = None
    source: Any = None  # the cue's note source (engine.note_sources), when it names one

    def path(self, value: str | os.PathLike) -> Path:
        """A path from a scene parameter: relative to the setlist's folder (``~`` expanded), as
        every path in a setlist is."""
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.folder / path

    def emit(self, event) -> None:
        """Tell the world: a MIDI event (``NoteOn(60, 90)``: it leaves through MIDI out, to a
        synth or a Disklavier) or an :class:`engine.events.Emitted` (``Emitted("phrase", (3,))``:
        sent as OSC ``/showrunner/emit/phrase``). Either way it goes out at the end of this tick,
        is listed in the metrics and the performance log, and a replay emits it again."""
        self.outbox.append(event)

    def trainer(self, learner: Any, name: str, *, seed: int | None = None, steps_per_tick: float = 1,
                steps_per_call: int = 1, niceness: int = 19, resumable: bool = True,
                own_cores: bool = True, duty: float = 1.0, process: bool = False) -> Any:
        """A :class:`engine.learners.Trainer` for ``learner`` that trains beside the show, made
        for how the show runs: live, a background thread (calls of ``steps_per_call`` steps);
        in a render, ``steps_per_tick`` steps in each tick (a fraction: one step every few
        ticks); in a replay, in each tick the steps
        the live show had reached (the performance log keeps the count of every tick in which it
        changed). The show ticks it before the scene's :meth:`Scene.tick`, which reads
        ``trainer.seen``: the snapshot of this tick, identical in a replay. The scene calls
        ``load()`` (in its load), ``start()`` (enter) and ``stop()`` (exit). ``seed``: default
        :meth:`seed_for` (``name``).

        ``resumable``: a show back after its process died catches up from the state the live
        trainer last saved (every 2 s), computing only the steps after it; until the catch-up
        reaches that state, the scene sees the one it had before. False for a scene that keeps
        something from every state it sees (as the first piece's trails are): the catch-up
        computes every step.

        ``own_cores``: live, the trainer and XLA's pool on half of the CPUs, the show's threads on
        the other (:mod:`engine.training_cores`); False where the scene runs jax kernels of its
        own beside the show (they would wait behind training on the pool's half).

        ``process``: live, the steps run in a process of their own that waits while the show
        works on a frame (:mod:`engine.learners.training_process`, :mod:`engine.compute_gate`);
        for a learner heavy enough to slow the frames from another CPU."""
        from engine.learners.trainer import Trainer

        if name in self.trainers:
            raise ValueError(f"this scene already has a trainer named '{name}'")
        replayed = self.replayed_steps(self.trainer_key(name)) if self.replayed_steps else None
        trainer = Trainer(learner, self.seed_for(name) if seed is None else seed,
                          paced_steps_per_tick=steps_per_tick if self.paced and replayed is None else None,
                          replay_steps=replayed, steps_per_call=steps_per_call, niceness=niceness, name=name,
                          gated=True, resumable=resumable, own_cores=own_cores, duty=duty,
                          process=process)
        self.trainers[name] = trainer
        return trainer

    def trainer_key(self, name: str) -> str:
        """How the performance log names trainer ``name`` of this cue's scene: "cue/name"."""
        return f"{self.cue}/{name}"

    def seed_for(self, *names: str) -> int:
        """A 32-bit seed from the show seed, the cue id and ``names``: the same in every run and
        process, different per cue and per name (two learners of one scene get two seeds)."""
        text = "/".join([str(self.seed), self.cue, *names])
        return zlib.crc32(text.encode())


_REGISTRY: dict[str, type[Scene]] = {}


class Scene:
    """A part of the show. Override hooks by name; none is required.

    Class attributes:
        name: the name setlists use; setting it registers the class.
        Params: the pydantic model of this scene's setlist parameters.
        overlay: True for a scene drawn over the one below (that scene keeps running and receives
            the events the overlay does not consume); False pauses the scene below while on top.
    """

    name: ClassVar[str | None] = None
    Params: ClassVar[type[SceneParams]] = SceneParams
    overlay: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name:
            other = _REGISTRY.get(name)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise ValueError(f"scene name '{name}' is taken by {other.__module__}.{other.__qualname__}")
            _REGISTRY[name] = cls

    def __init__(self, params: SceneParams | None = None, context: SceneContext | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.context = context if context is not None else SceneContext()

    # Hooks, in the order a show calls them. All do nothing by default.
    def load(self) -> None:
        """Once per show, before it starts: compile shaders, jit, allocate. May be slow."""

    def enter(self) -> None:
        """The scene becomes active (its cue starts or restarts): reset per-run state here."""

    def exit(self) -> None:
        """The scene stops being active."""

    def pause(self) -> None:
        """An opaque scene was pushed on top of this one."""

    def resume(self) -> None:
        """The scene on top was popped; this one is active again."""

    def on_midi(self, event: MidiEvent) -> bool:
        """Handle an event at a tick; return True to consume it, False to let it fall below."""
        return False

    def on_event(self, event) -> bool:
        """Any other event at a tick (:class:`engine.events.TextInput`, an OSC message for the
        piece, ...); True consumes it."""
        return False

    def set_param(self, name: str, value: Any) -> str | None:
        """Change one parameter live (OSC, MIDI learn), validated by ``Params`` like the setlist's;
        returns what is wrong with it, or None when it took."""
        if name not in type(self.params).model_fields:
            return f"no parameter '{name}' (parameters: {', '.join(type(self.params).model_fields)})"
        try:
            self.params = type(self.params).model_validate({**self.params.model_dump(), name: value})
        except ValueError as error:
            return str(error).splitlines()[-1].strip() if str(error) else "invalid value"
        return None

    def tick(self, dt: float) -> None:
        """Advance state by one fixed tick of ``dt`` seconds."""

    def warm_up_events(self) -> list[MidiEvent]:
        """What the show plays into this scene when it warms it up before the show (after
        ``load``: ``enter``, these events through ``on_midi``, two ticks, ``draw``, ``exit``; its
        sound muted): by default a bass note and a C major chord above it, so that drawing and
        learning paths run once before the audience sees them."""
        return [NoteOn(36, 80), NoteOn(60, 80), NoteOn(64, 80), NoteOn(67, 80)]

    def draw(self, alpha: float) -> None:
        """Draw into the bound framebuffer; ``alpha`` (0..1) is the fraction of the next tick elapsed."""

    def status(self) -> dict[str, Any]:
        """Extra fields for this tick's metrics line (for example ``loss`` and ``grad``)."""
        return {}


def scene_class(name: str, load_pieces: bool = True) -> type[Scene]:
    """The registered scene class called ``name``; when there is none yet and ``load_pieces``,
    every installed piece is loaded first (:mod:`engine.pieces`). KeyError when unknown."""
    if name not in _REGISTRY and load_pieces:
        from engine import pieces

        pieces.load()
    return _REGISTRY[name]


def known_scenes(load_pieces: bool = True) -> list[str]:
    """Every registered scene's name (after loading every installed piece, unless told not to)."""
    if load_pieces:
        from engine import pieces

        pieces.load()
    return sorted(_REGISTRY)
