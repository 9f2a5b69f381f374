"""The show: the fixed-timestep loop that runs a setlist's cues as scenes, fed by MIDI.

Per frame: read the time source, let the clock say how many fixed ticks are owed, poll the MIDI
sources, run the ticks (cue changes, due MIDI events, scene ticks, advance triggers, one metrics line
each), then draw once with the interpolation alpha. Show time is ``tick * dt``; a MIDI event stamped
at show second ``s`` is delivered in the first tick whose end is at or after ``s``, in arrival order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.audio.control import AudioOut, NoAudio
from engine.events import MIDI_TYPES, Emitted, OscMessage, TextInput, describe_any
from engine.video_in import VideoTexture
from engine.clock import FixedStepClock, TimeSource, VirtualTime
from engine.display import Display
from engine.numerics import one_blas_thread
from engine.errors import UserError
from engine.hud import Hud
from engine.keyboard import TICK_ACTIONS, VELOCITY, KeyAction, KeyboardInstrument
from engine.metrics import MetricsLog
from engine import compute_gate, midi_learn
from engine.midi_learn import LearnChange, MidiLearn
from engine.midi import SOFT, ControlChange, EventQueue, NoteOff, NoteOn, PedalState, ProgramChange, describe
from engine.note_sources import SourcePlayer, make_source
from engine.playhead import Playhead
from engine.scene import Scene, SceneContext
from engine.setlist import LoadedSetlist
from engine.input_bound import PEDALS, bound_input, latest_params
from engine.stack import SceneStack
from engine.tick_record import TickRecord

if TYPE_CHECKING:
    from engine.perflog import PerformanceLog, Replay
    from engine.recorder import Recorder
    from engine.video_in import VideoSource
    from engine.midi_out import MidiPortOutput
    from engine.osc import OscInput, OscOutput

log = logging.getLogger("showrunner.show")

END_TAIL = 2.0  # seconds the show runs on after a MIDI file's last event
MEDIA_VOICES = (1 << 16) + 0x8000  # sampler voices of fixed media (scene voices start at 1 << 16)
BURST = 16  # events in one tick beyond which a live tick's input has a time budget (a flood)


class MidiSource(Protocol):
    """What plays into the show: a live port (engine.midi_port), a MIDI file (engine.midi_file)."""

    def start(self, origin: float) -> None: ...

    def poll(self, now: float) -> None: ...

    def take_notices(self) -> list[str]:
        """Events for the metrics (a port lost, back). Optional: a source without it has none."""
        ...


@dataclass
class ShowOptions:
    """How to run a setlist.

    Attributes:
        start_cue: cue id to start at (rehearsal); None = the first cue.
        duration: stop after this many show seconds; None = run until quit (or the MIDI file ends).
        fps: frames drawn per second (the loop paces itself to it in real time).
        metrics: path of the JSON Lines metrics log, or None.
        program_change_jumps: a program change p jumps to cue p + 1 (cue index p); None = as the
            setlist's [midi] program_change_jumps says (off unless it says so).
        end_with_file: with a MIDI file and no duration, end END_TAIL seconds after its last event.
        hud: show the rehearsal HUD from the start (F1 toggles it).
    """

    start_cue: str | None = None
    duration: float | None = None
    fps: float = 60.0
    metrics: Path | None = None
    program_change_jumps: bool | None = None
    end_with_file: bool = True
    hud: bool = False
    append_metrics: bool = False  # go on writing the metrics log (a show restarted after it died)


@dataclass
class ShowSummary:
    ticks: int = 0
    frames: int = 0
    notes: int = 0
    scene_errors: int = 0
    frame_ms: list[float] = field(default_factory=list)
    cues_played: list[str] = field(default_factory=list)
    recompilations: int = 0  # jax compilations after the scenes loaded (0 in a healthy show)
    overload: int = 0  # input events left out because a tick brought more than the show takes
    replay_differences: int = 0  # ticks in which a replay took another cue than the live show
    load_failures: list[str] = field(default_factory=list)  # one line per cue whose scene failed to load

    @property
    def median_frame_ms(self) -> float:
        return statistics.median(self.frame_ms) if self.frame_ms else 0.0


GAP_MARGIN = 0.1  # seconds about the cut between the MIDI the audio process heard in a gap and the show's own


def _compilations() -> int:
    """jax compilations in this process so far; 0 when no scene uses learners (jax not loaded)."""
    counter = sys.modules.get("engine.learners.compilation")
    return counter.compilations() if counter is not None else 0


class Show:
    def __init__(self, setlist: LoadedSetlist, options: ShowOptions, time_source: TimeSource,
                 display: Display | None, queue: EventQueue | None = None,
                  audio: AudioOut | None = None, video_source: VideoSource | None = None,
                 recorder: Recorder | None = None, perf_log: PerformanceLog | None = None,
                 replay: Replay | None = None, osc_in: OscInput | None = None,
                 osc_out: OscOutput | None = None, midi_out: MidiPortOutput | None = None,
                 learn: MidiLearn | None = None) -> None:
        one_blas_thread()  # the show's numbers alike on every machine (engine.numerics)
        self.setlist = setlist
        self.options = options
        self.time = time_source
        self.display = display
        self.queue = queue if queue is not None else EventQueue()
        self.audio = audio if audio is not None else NoAudio()
        self.video: VideoTexture | None = None
        self.hud: Hud | None = None
        if display is not None:
            self.hud = Hud(display.gl, display.shaders, display.size, visible=options.hud)
        if video_source is not None and display is not None:
            self.video = VideoTexture(display.gl, video_source)
        self.master_gain_db = setlist.settings.audio.master_gain_db
        settings = setlist.settings
        if isinstance(time_source, VirtualTime):
            # Offline every frame's time is exact: never drop any (no catch-up bound needed).
            self.clock = FixedStepClock(settings.tick_rate, max_ticks_per_frame=2**31,
                                        max_frame_time=float("inf"))
        else:
            # Room for twice the ticks a frame normally runs (tick rates above the frame rate), and
            # at least 5 so a hiccup of a few frames is made up instead of dropped.
            per_frame = math.ceil(settings.tick_rate / options.fps)
            self.clock = FixedStepClock(settings.tick_rate, max_ticks_per_frame=max(5, 2 * per_frame),
                                        max_frame_time=max(0.25, 2 * per_frame / settings.tick_rate))
        self.pedals = PedalState()
        self.stack = SceneStack(on_error=self._scene_failed)
        start = setlist.index_of(options.start_cue) if options.start_cue else 0
        self.playhead = Playhead(setlist.cues, start)
        self.sources: list[MidiSource] = []
        self._source_player: SourcePlayer | None = None  # the current cue's note source
        self._media: dict[tuple[str, str], tuple[int, Any]] = {}  # fixed media sounding: (sampler, table)
        self._media_count = 0
        self._throw_requested = False
        self._typed: list[OscMessage] = []  # text entered in the window (F6), sent at the next tick
        self.keyboard = KeyboardInstrument()
        self.summary = ShowSummary()
        self.scenes: list[Scene] = []
        self._origin = 0.0  # time-source seconds of show time 0
        self._quit = False
        self._end_at: float | None = None  # show seconds
        self._pending_events: list[str] = []
        self._metrics: MetricsLog | None = None
        self._last_frame_ms: float | None = None
        self._last_ticks_ms = 0.0  # the last frame's ticks, all of them (said when a frame is late)
        self._error_counts: dict[tuple[int, str], int] = {}
        self._compilations = 0
        self.frame_sink: Callable[[], None] | None = None  # called after each frame is drawn
        self.recorder = recorder  # engine.recorder.Recorder: the frames and sound to a file
        self.perf_log = perf_log  # engine.perflog.PerformanceLog: the inputs, by tick
        self.replay = replay  # engine.perflog.Replay: the inputs come from a performance log
        self._pending_actions: list[KeyAction] = []  # performer moves, applied at the next tick
        self.osc_in = osc_in  # engine.osc.OscInput: OSC that drives the show
        self.osc_out = osc_out  # engine.osc.OscOutput: what happens, published
        self.midi_out = midi_out  # engine.midi_out.MidiPortOutput: what scenes emit
        self._outbox: list = []  # what scenes emitted during the tick being run
        self._osc_handlers: list = []  # (address, handler) the scenes asked osc_now for
        self._said_at: dict[str, tuple[float, int]] = {}  # rate-limited log lines: when, how many unsaid
        self._held_notes: set[tuple[int, int]] = set()  # (channel, note) taken in and not released
        # Controllers whose every value is taken (pedals, the setlist's advance triggers).
        self._kept_controllers = PEDALS | {c.cue.advance.cc for c in setlist.cues if c.cue.advance.cc is not None}
        self.warm_up_failures: list[str] = []  # scenes whose warm-up raised (check fails on them)
        self._port_heard = False
        # MIDI learn (engine/midi_learn.py): controller bindings, and binding changes for the next tick.
        self.learn = learn if learn is not None else MidiLearn(setlist)
        self._pending_learn: list[LearnChange] = []
        self._trained: dict[str, int] = {}  # the step count last logged for each trainer ("cue/name")
        self._trainer_failed: set[str] = set()
        # Chunked renders (engine/farm.py): frames run so far, a hook at the top of each frame (a
        # snapshot is taken there), the frame to stop before, and whether frames are drawn at all
        # (the farm's first pass only ticks).
        self.frame_index = 0
        self._last_now = 0.0  # the time source's reading at the top of the last frame
        self.before_frame: Callable[[int], None] | None = None
        self.stop_at_frame: int | None = None
        self.draw_frames = True
        # Recovery (engine/supervisor.py): where the show says once a second how far it got.
        self.heartbeat: Path | None = None
        self._heartbeat_at = 0.0
        self.recovered: dict | None = None  # after catch_up: the gap and the catch-up's time
        # Where live trainers save their newest state for a show catching up after this one died
        # (and where a catching-up show reads them): engine.supervisor.training_folder.
        self.training_folder: Path | None = None
        # Where a supervised live show saves its whole state now and then (engine.recovery_state),
        # and the tick a show catching up after a death started from (0: the log's start).
        self.state_saver = None
        self.restored_at = 0

    # Set-up.
    def load(self, progress: Callable[[int, str], None] | None = None) -> list[str]:
        """Instantiate and load every cue's scene (before the show, so jumps never stall).

        Returns one message per scene that failed to load; such a cue shows black, the show goes on.
        """
        settings = self.setlist.settings
        failures = []
        for index, cue in enumerate(self.setlist.cues):
            context = SceneContext(
                cue=cue.id,
                gl=self.display.gl if self.display else None,
                size=self.display.size if self.display else settings.resolution,
                shaders=self.display.shaders if self.display else None,
                seed=settings.seed, pedals=self.pedals, audio=self.audio, video=self.video,
                log=logging.getLogger(f"showrunner.scene.{cue.cue.scene}"), outbox=self._outbox,
                paced=isinstance(self.time, VirtualTime),
                replayed_steps=self.replay.trained_steps if self.replay is not None else None,
                folder=self.setlist.path.parent,
                osc_now=self._osc_now if not isinstance(self.time, VirtualTime) else None)
            if cue.cue.source is not None:
                try:
                    context.source = make_source(cue.cue.source, f"cue '{cue.id}'")
                except UserError as error:
                    failures.append(str(error))
            scene = cue.scene_class(cue.params, context)
            try:
                scene.load()
            except Exception as error:
                # The traceback for the show log's file; the one line is the caller's to say.
                log.debug("cue %s: scene %s failed to load", cue.id, cue.cue.scene, exc_info=True)
                failures.append(f"cue '{cue.id}': scene '{cue.cue.scene}' failed to load: {error}")
                scene = Scene(context=context)  # an empty stand-in keeps the cue list intact
            self.scenes.append(scene)
            problem = self._warm_up(scene)
            if problem is not None:
                self.warm_up_failures.append(f"cue '{cue.id}': scene '{cue.cue.scene}' failed to warm up: "
                                             f"{problem}")
            if progress is not None:
                progress(index + 1, cue.id)
        self.summary.load_failures = list(failures)
        if self.display is not None:
            self.display.warm_up()
        one_blas_thread()  # a BLAS the scenes loaded (scipy's own)
        return failures

    def _warm_up(self, scene: Scene) -> str | None:
        """Run a freshly loaded scene as the show will, unseen and unheard: enter, a bass note and
        a chord, two ticks, a draw, exit (the order docs/scenes.md gives), so that the GL driver
        compiles its pipelines now (llvmpipe JIT-compiles on first draw, ~100 ms) and every path
        a note takes has run once, not in the first frame after a jump. Its sound goes nowhere
        (the scene's audio is muted meanwhile); ``enter`` starts the real run afresh. Returns
        what went wrong, or None."""
        context = scene.context
        audio = context.audio
        context.audio = NoAudio(audio.rack, audio.pool)
        try:
            scene.enter()
            for event in scene.warm_up_events():
                scene.on_midi(event)
            for _ in range(2):
                scene.tick(self.clock.dt)
            if self.display is not None:
                self.display.begin_frame()
                scene.draw(0.0)
                self.display.gl.finish()
            scene.exit()
        except Exception as error:
            log.error("warm-up of %s failed: %s: %s (it will run live as it is)", type(scene).__name__,
                      type(error).__name__, error, exc_info=True)
            return f"{type(error).__name__}: {error}"
        finally:
            context.audio = audio
            self._outbox.clear()  # what it emitted while warming up goes nowhere
        return None

    def take_event_ports(self, osc_in: OscInput | None = None, osc_out: OscOutput | None = None,
                         midi_out: MidiPortOutput | None = None) -> None:
        """Ports opened after the scenes loaded (a standby show taking over): the show and its
        scenes use them from the next tick (the handlers scenes gave ``osc_now`` included)."""
        self.osc_in, self.osc_out, self.midi_out = osc_in, osc_out, midi_out
        if osc_in is not None:
            for address, handler in self._osc_handlers:
                osc_in.on_message_now(address, handler)

    def _osc_now(self, address: str, handler) -> None:
        """A scene's ``context.osc_now``: ``handler`` on the OSC listener's thread for ``address``
        (kept for a listener opened later)."""
        self._osc_handlers.append((address, handler))
        if self.osc_in is not None:
            self.osc_in.on_message_now(address, handler)

    def add_source(self, source: MidiSource) -> None:
        self.sources.append(source)

    def request_quit(self) -> None:
        """End the show at the end of the current frame (safe from a signal handler)."""
        self._quit = True

    @property
    def quit_requested(self) -> bool:
        return self._quit

    # The loop.
    def run(self, performer_end: float | None = None, resume: bool = False) -> ShowSummary:
        """Run until quit, ``duration`` show seconds, or the end of a MIDI file (``performer_end``,
        in file seconds, when a MIDI-file performer was started at show time 0). ``resume``: go
        on from a restored snapshot (engine.snapshot) rather than from the start."""
        if self.options.duration is not None:
            self._end_at = self.options.duration
        elif performer_end is not None and self.options.end_with_file:
            self._end_at = performer_end + END_TAIL
        if self.options.metrics is not None:
            self._metrics = MetricsLog(self.options.metrics, append=self.options.append_metrics)
        frame_period = 1.0 / self.options.fps
        freewheel = isinstance(self.time, VirtualTime)
        last = self._last_now if resume else self.time.now()  # the time source at the last frame
        deadline = self.time.now()
        if not resume:
            self._origin = last
            for source in self.sources:
                source.start(self._origin)
        if self.recorder is not None:
            self.recorder.begin(self._tap_frames())
        # The audio process plays the port's notes itself (live), or did when the show being
        # replayed was live: such notes are listed as heard, and a replay plays them here.
        self._port_heard = self.audio.hears_midi or (self.replay is not None and self.replay.hears_midi)
        self._compilations = _compilations()
        if self.replay is not None and not resume:  # MIDI learn: the bindings the live show started with
            self.learn = midi_learn.from_records(self.setlist, self.replay.header.get("midi_learn") or [])
        if self.recorder is not None and self.display is not None:
            # Waiting for the screen's vertical blank in the buffer swap, the show rests too.
            self.display.on_swap_wait = lambda waiting: self.recorder.show_busy(not waiting)
        try:
            while not self._quit:
                if self.before_frame is not None:
                    self.before_frame(self.frame_index)
                if self.state_saver is not None and self.replay is None and self._catching_up is None:
                    self.state_saver.maybe_save(self)
                if self.stop_at_frame is not None and self.frame_index >= self.stop_at_frame:
                    break
                if self.recorder is not None:
                    self.recorder.show_busy(True)  # a yielding encoder waits until the rest
                if not freewheel:
                    compute_gate.busy()  # training processes wait until the rest (live)
                now = self.time.now()
                steps = self.clock.advance(now - last)
                if steps.dropped > 0:
                    # Where the time went: the last frame's ticks and drawing are the show's; the
                    # rest (a process that had the CPU, a pause, a slow disk) is the machine's.
                    log.warning("frame took too long: %.0f ms of show time dropped (%.0f ms since the last "
                                "frame: its ticks took %.0f ms, its drawing %.0f ms)", steps.dropped * 1000,
                                (now - last) * 1000, self._last_ticks_ms, self._last_frame_ms or 0.0)
                last = self._last_now = now
                self._origin += steps.dropped
                for source in self.sources:
                    source.poll(now)
                    notices = getattr(source, "take_notices", None)
                    if notices is not None:
                        self._pending_events.extend(notices())
                self._handle_window_events(now)
                first = self.clock.tick_count - steps.ticks + 1
                ticks_started = time.perf_counter()
                for tick in range(first, self.clock.tick_count + 1):
                    self._tick(tick)
                    self.summary.ticks = tick
                    if self._end_at is not None and tick * self.clock.dt >= self._end_at - 1e-9:
                        self._quit = True
                        break
                self._last_ticks_ms = (time.perf_counter() - ticks_started) * 1000
                if self.heartbeat is not None:
                    self._beat()
                if self.clock.tick_count > 0 and self.draw_frames:  # nothing before the first cue
                    self._draw(steps.alpha)
                elif not self.draw_frames and self.frame_sink is not None:
                    self.frame_sink()  # a render's progress, frames drawn or not
                self.frame_index += 1
                if freewheel:
                    self.time.advance(frame_period)
                else:
                    deadline += frame_period
                    wait = deadline - self.time.now()
                    if wait < -frame_period:  # far behind: do not try to catch up on sleep
                        deadline = self.time.now()
                    if self.recorder is not None:
                        self.recorder.show_busy(False)
                    compute_gate.rest()
                    self.time.sleep(wait)
        finally:
            compute_gate.rest()
            if self.recorder is not None:
                self.recorder.show_busy(False)
                if self.display is not None:
                    self.display.on_swap_wait = None
            if self.perf_log is not None:
                self.perf_log.end(self.summary.ticks)
            if self._metrics is not None:
                self._metrics.close()
            self.stack.exit_all()
            # The show is over: a trainer's live thread ends its call now (a process that exits
            # while XLA computes on another thread aborts in C++).
            # A training process (engine.learners.training_process) ends with the last of its trainers.
            for scene in self.scenes:
                for trainer in scene.context.trainers.values():
                    if not trainer.join(10.0):
                        log.warning("trainer %s did not stop within 10 s", trainer.name)
                    elif trainer.process:
                        trainer.close()
            if self.video is not None:
                self.video.close()
        self.summary.scene_errors = self.stack.errors
        return self.summary

    def _beat(self) -> None:
        """Four times a second: the tick reached, for a supervisor restarting a show that died."""
        now = time.monotonic()
        if now - self._heartbeat_at < 0.25:
            return
        self._heartbeat_at = now
        try:
            partial = self.heartbeat.with_name(self.heartbeat.name + ".new")
            partial.write_text(json.dumps({"tick": self.clock.tick_count, "seconds": self.clock.show_time,
                                           "cue": self.playhead.current.id, "origin": self._origin}) + "\n")
            os.replace(partial, self.heartbeat)
        except OSError:
            pass  # the show goes on without it

    def catch_up(self, replay: Replay, until: int, next_cue: bool = False, heard_after: float | None = None,
                 state: Path | None = None) -> float:
        """Before ``run(resume=True)`` of a show restarted after its process died: tick through the
        performance log of the show that died, without drawing or sounding, up to tick ``until``
        (where it got), so that every scene, learner and trainer, the cue, the pedals and the MIDI
        learn bindings are where they were; then hand the show back to its live devices, the
        current cue's sound settings sent again. ``next_cue``: then go on to the next cue (the
        show died here again and again). ``heard_after``: the instant (the time source's seconds)
        up to which the show that died took in its live MIDI; what the port brought since, which
        the audio process it left playing took in and played (:meth:`LiveAudio.adopt`), this show
        takes in at its first tick, in its order, instead of what its own reader caught of it.
        ``state``: a state the show that died saved (engine.recovery_state): when it can be had,
        the show starts from it (:attr:`restored_at`, its tick) and ticks the log after it only.
        Returns the seconds it took.

        In three steps for a standby show following a live show's log as it grows
        (engine.supervisor): :meth:`begin_catch_up`, :meth:`catch_up_to` as often as it likes,
        :meth:`end_catch_up` when it takes over."""
        started = time.perf_counter()
        if self._catching_up is None:
            restored = None
            if state is not None:
                from engine import recovery_state

                restored = recovery_state.restore(self, state, until, recovery_state.log_identity(replay.path))
            self.restored_at = restored or 0
            self.begin_catch_up(replay, restored=restored is not None)
        self.catch_up_to(until)
        self.end_catch_up(next_cue, heard_after)
        return time.perf_counter() - started

    _catching_up: dict | None = None  # while catching up: the live devices, kept aside

    def begin_catch_up(self, replay: Replay, restored: bool = False) -> None:
        """Mute the show and take its inputs from ``replay`` (see :meth:`catch_up`); ``restored``:
        the show is at a saved state's tick, its MIDI learn bindings that tick's."""
        from engine.audio.control import NoAudio

        self._compilations = _compilations()  # what the scenes compiled at load is not a stall
        muted = NoAudio(self.audio.rack, self.audio.pool)
        trainers = []
        for scene in self.scenes:
            scene.context.audio = muted
            for name, trainer in scene.context.trainers.items():
                key = scene.context.trainer_key(name)
                steps = replay.trained_steps(key)
                trainer.replay_steps = steps if steps is not None else (lambda tick: 0)
                trainer.resume_from = self._published(key) if trainer.resumable else None
                trainers.append(trainer)
        self._catching_up = {"audio": self.audio, "perf_log": self.perf_log, "osc_out": self.osc_out,
                             "midi_out": self.midi_out, "metrics": self._metrics, "trainers": trainers,
                             "learn_file": self.learn.path}
        self.audio, self.perf_log, self.osc_out, self.midi_out, self._metrics = muted, None, None, None, None
        self.replay = replay
        self._port_heard = replay.hears_midi
        if not restored:
            self.learn = midi_learn.from_records(self.setlist, replay.header.get("midi_learn") or [])
        self.learn.path = None  # the bindings the log replays were saved by the show that made them

    def _published(self, key: str) -> Path | None:
        """Where the live trainer ``key`` ("cue/name") saves its newest state (None: nowhere)."""
        if self.training_folder is None:
            return None
        return self.training_folder / (urllib.parse.quote(key, safe="") + ".ckpt")

    def publish_training(self, folder: Path) -> None:
        """Live, supervised: every trainer saves its newest state in ``folder`` as it trains, for a
        show catching up after this one died (a standby taking over, still catching up, too)."""
        self.training_folder = folder
        for scene in self.scenes:
            for name, trainer in scene.context.trainers.items():
                if trainer.resumable:
                    trainer.publish_to = self._published(scene.context.trainer_key(name))

    def catch_up_to(self, until: int) -> None:
        """Tick, muted, through the replay's inputs up to tick ``until``."""
        for tick in range(self.clock.tick_count + 1, until + 1):
            self._tick(tick)
            self.clock.tick_count = self.summary.ticks = tick

    def end_catch_up(self, next_cue: bool = False, heard_after: float | None = None) -> None:
        """Hand the show back to its live devices (see :meth:`catch_up`)."""
        live, self._catching_up = self._catching_up, None
        self.replay = None
        # Devices a standby opened when it took over count, else the ones set aside.
        self.perf_log = self.perf_log or live["perf_log"]
        self.osc_out = self.osc_out or live["osc_out"]
        self.midi_out = self.midi_out or live["midi_out"]
        self.audio, self._metrics = live["audio"], live["metrics"]
        self.learn.path = live["learn_file"]  # bindings made from here are saved, as before the death
        self._port_heard = self.audio.hears_midi
        for scene in self.scenes:
            scene.context.audio = self.audio
        for trainer in live["trainers"]:  # live again: a started trainer trains in its thread from here
            try:
                trainer.settle(self.clock.tick_count)
            except Exception:  # the show goes on; the scene keeps the state it has
                log.exception("trainer %s failed to catch up", trainer.name)
            trainer.replay_steps = trainer.resume_from = None
            if trainer._started:
                trainer.start()
        self._cue_sound(self.setlist.cues[self.playhead.index])
        self.audio.set_gain("master", self.master_gain_db)
        if next_cue:  # a performer's GO at the first tick from here: in the log, so replays take it too
            self._pending_actions.append(KeyAction("go"))
        self._pending_events.append("recovered")
        show_time = self.clock.tick_count * self.clock.dt
        self._origin = self.time.now() - show_time
        self._last_now = self.time.now()
        for source in self.sources:
            source.start(self._origin)
            skip = getattr(source, "skip_to", None)
            if skip is not None:
                skip(show_time)  # a MIDI file goes on from where the show got
        if heard_after is not None and getattr(self.audio, "adopted", False) and self.audio.hears_midi:
            now = self._last_now
            time.sleep(0.02)  # the audio process reads the port every block: it has what came by now
            # Two readers stamp one event a few ms apart: near the cut, what both caught is taken
            # once (the audio process's), what either caught is taken.
            gap = self.audio.midi_heard(heard_after, now + GAP_MARGIN)
            late = [replace(event, time=0.0) for stamp, event in gap if stamp > now]
            own = [(stamp, event) for stamp, event in self.queue.pop_due(now + GAP_MARGIN) if stamp > now]
            taken = [event for _stamp, event in gap]
            for _stamp, event in own:
                same = replace(event, time=0.0)
                if same in late:
                    late.remove(same)  # the same event, already in the gap's list
                else:
                    taken.append(event)
            # Stamped at the tick it died at: taken in at the first tick from here, in order.
            self.queue.replace_until(now + GAP_MARGIN, [(self._origin + show_time, event) for event in taken])
            if gap:
                log.info("took in %d MIDI event(s) the port brought while the show was away", len(gap))

    def _tick(self, tick: int) -> None:
        """One fixed step, concern by concern: the performer's moves, the cue, the input, the
        scenes, the sound, then the record of it all (metrics line, HUD)."""
        show_time = tick * self.clock.dt
        # Commands of this tick act from its end: the show takes in the tick's inputs then, as the
        # audio process hears them live, and the tick's picture shows from then on too.
        self.audio.show_time = show_time
        record = TickRecord(tick, show_time, events=self._pending_events)
        self._pending_events = []
        actions, messages, learn_changes = self._take_moves(tick, record)
        self._take_cue(tick, show_time, record)
        for message in latest_params(messages):
            self._osc_message(message)
        if self._throw_requested:
            self._throw_requested = False
            self._rethrow(show_time - self.clock.dt, record)
        record.osc = [describe_any(m) for m in messages]
        taken = self._deliver_input(tick, show_time, record)
        trained = self._tick_trainers(tick, show_time)
        self.stack.tick(self.clock.dt)
        self.audio.flush()  # live: the tick's commands leave now, in the order of its input
        record.emitted = self._send_emitted(tick)
        if self.perf_log is not None:
            self.perf_log.tick(tick, taken, actions, record.taken_cue, osc=messages,
                               emitted=record.emitted, learn=learn_changes, trained=trained)
        self._after_scenes(tick, show_time, record)
        if self.hud is not None:
            self._observe(record)
        if self._metrics is not None:
            self._metrics.write(record.metrics(self.playhead.current.id, self.playhead.current.cue.scene))
        self._last_frame_ms = None  # reported once

    def _tick_trainers(self, tick: int, show_time: float) -> dict[str, int]:
        """Tick the background trainers of the active scenes (engine.learners.Trainer, made by
        ``context.trainer``) before the scenes tick: paced, each trains its steps for the tick (a
        replay: up to the live show's count); live, each pins its newest snapshot as ``seen``.
        Returns the counts that changed since last logged ("cue/name": steps), for the log."""
        changed = {}
        for scene in self.stack.active():
            context = scene.context
            for name, trainer in context.trainers.items():
                try:
                    steps = trainer.tick(show_time, tick)
                except Exception:  # the show goes on; the scene sees the snapshot it had
                    key = context.trainer_key(name)
                    if key not in self._trainer_failed:  # said once, not 60 times a second
                        self._trainer_failed.add(key)
                        log.exception("trainer %s failed to train (its scene keeps its last snapshot)", key)
                    continue
                key = context.trainer_key(name)
                live = trainer.replay_steps(tick) if trainer.replay_steps is not None else steps
                if steps != live and trainer.resume_from is None:  # catching up from saved states: behind
                    self._replay_differs(tick, f"trainer {key} had trained", live, steps)
                if self._trained.get(key) != steps:
                    self._trained[key] = changed[key] = steps
        return changed

    def _take_moves(self, tick: int, record: TickRecord) -> tuple[list[KeyAction], list[OscMessage], list]:
        """The performer's moves (keys, OSC moves; a replay's from its log), OSC for the scenes and
        MIDI learn's binding changes, taken at the start of the tick."""
        actions = self.replay.moves(tick) if self.replay is not None else self._pending_actions
        self._pending_actions = []
        if self.replay is not None:
            messages = self.replay.osc_messages(tick)
        else:
            messages = self.osc_in.take() if self.osc_in is not None else []
            messages, self._typed = messages + self._typed, []  # text typed in the window
            messages = [replace(m, time=m.time - self._origin) for m in messages]
            messages = [m for m in messages if not self._osc_move(m, actions)]
        for action in actions:
            self._act(action)
        # MIDI learn: bindings made or removed (the performer's, or the log's in a replay).
        learn_changes = self.replay.learn_changes(tick) if self.replay is not None else self._pending_learn
        self._pending_learn = []
        for change in learn_changes:
            self._learn_change(change, record.events)
        return actions, messages, learn_changes

    def _take_cue(self, tick: int, show_time: float, record: TickRecord) -> None:
        """A cue asked for (by a move, a trigger, a timer) starts at this tick boundary."""
        requested = self.playhead.take_request()
        if requested is not None:
            self.stack.replace_all(self.scenes[requested])
            self.playhead.started(requested, show_time - self.clock.dt)
            cue = self.setlist.cues[requested]
            self._start_source(requested, show_time - self.clock.dt, record)
            record.taken_cue = cue.id
            self._cue_sound(cue)
            self.summary.cues_played.append(cue.id)
            record.events.append("cue")
            log.info("cue %s (#%d): %s", cue.id, requested + 1, cue.cue.title or cue.cue.scene)
            if self.display is not None:
                self.display.set_caption(f"{self.setlist.settings.title} - {cue.id} ({cue.cue.scene})")
            if self.osc_out is not None:
                self.osc_out.send("/showrunner/cue", cue.id, requested + 1)
        self.stack.apply_pending()
        if self.replay is not None and self.replay.cues is not None:
            self._check_replayed_cue(tick, record.taken_cue)

    def _start_source(self, index: int, start: float, record: TickRecord) -> None:
        """The cue's note source writes from ``start`` (the previous cue's stops, its notes
        released). A replay writes and plays the same (the same seeds), but its notes come from its
        log (:meth:`_play_source`)."""
        if self._source_player is not None:
            self._play_source(self._source_player.release(start))
            self._source_player = None
        source = self.scenes[index].context.source
        if source is not None:
            self._source_player = SourcePlayer(source, self.setlist.cues[index].id, self.setlist.settings.seed)
            word = self._source_player.throw(start)
            record.events.append(word)
            log.info("cue %s: %s", self.setlist.cues[index].id, word)

    def _rethrow(self, show_time: float, record: TickRecord) -> None:
        """The performer asks the source to write again from now."""
        player = self._source_player
        if player is None:
            return
        # The notes sounding are released by the player itself, as its next notes due: in the
        # tick after a pedal's (as through the queue before), and in its state, so that a show
        # back after dying right after a new writing releases them (a catch-up pushes nothing).
        record.events.append(player.throw(show_time, releasing=player.release(show_time)))

    def _play_source(self, notes: list) -> None:
        """A note source's notes (show time, event) into the input, live. A replay (and a show
        catching up after a death) plays its source all the same, so that where the source is
        (what is pending, what sounds) is the live show's when it goes live, but takes the notes
        from its log: the live show's queue never holds them."""
        if self.replay is None:
            for at, event in notes:
                self.queue.push(self._origin + at, event)

    def _deliver_input(self, tick: int, show_time: float, record: TickRecord) -> list:
        """The MIDI events due in this tick, bounded (:mod:`engine.input_bound`), to the sound, the
        HUD, OSC, MIDI learn, the playhead's triggers and the scenes; returns those taken."""
        if self._source_player is not None:  # a source's notes join the input as they fall due
            self._play_source(self._source_player.due(show_time))
        if self.replay is not None:  # stamped in show time already, bit for bit
            due = [(None, event) for event in self.replay.due(tick)]
        else:
            due, dropped = bound_input(self.queue.pop_due(self._origin + show_time),
                                       self.setlist.settings.midi.max_events_per_tick,
                                       self._kept_controllers, self._held_notes)
            if dropped:
                self._overload(tick, dropped, record)
        # Live, a burst (more events in one tick than two hands play) also has a time budget: a
        # scene whose notes are costly (a learner step each) takes fewer of a flood. Playing, even
        # a ten-finger chord with the pedals, never meets it; renders and replays take what they
        # are given, so they stay deterministic (a replay's log holds only what the live show took).
        budget = self.setlist.settings.midi.input_ms_per_tick / 1000.0
        deadline = time.perf_counter() + budget if self.replay is None and len(due) > BURST \
            and not isinstance(self.time, VirtualTime) else None
        taken, late = [], 0
        for stamp, event in due:
            if deadline is not None and isinstance(event, (NoteOn, ProgramChange)) \
                    and time.perf_counter() > deadline:
                late += 1
                continue
            if stamp is not None:
                event = replace(event, time=stamp - self._origin)
            record.delivered.append([describe(event), round(event.time, 6)])
            taken.append(event)
            self.audio.next_position()  # what is sent for this event (now, or later "at" it)
            self._take_event(event, record)
        self.audio.next_position()  # the scenes' ticks: after every event
        if late:
            self._overload(tick, late, record)
        return taken

    def _take_event(self, event, record: TickRecord) -> None:
        """One MIDI event of the tick, wherever it goes."""
        self.pedals.update(event)
        if isinstance(event, ControlChange) and event.control == SOFT and event.value >= 64 \
                and self._source_player is not None and self.playhead.current.cue.advance.cc != SOFT:
            self._rethrow(event.time, record)  # the soft pedal: a new writing (unless it advances)
        elif self._source_player is not None and self._source_player.source.throws_on(event):
            self._rethrow(event.time, record)  # the source's own key: a new writing (the key sounds too)
        if isinstance(event, NoteOn):
            self._held_notes.add((event.channel, event.note))
            self.summary.notes += 1
        elif isinstance(event, NoteOff):
            self._held_notes.discard((event.channel, event.note))
        if isinstance(event, (NoteOn, NoteOff)):
            if self.hud is not None:
                self.hud.note(event.note, isinstance(event, NoteOn))
            if self.osc_out is not None:
                self.osc_out.send("/showrunner/note", event.note,
                                  event.velocity if isinstance(event, NoteOn) else 0, event.channel)
        if self._port_heard:
            self.audio.heard(event, send=not self.audio.hears_midi)
        else:
            self.audio.play(event)
        if isinstance(event, ControlChange) and self._learned(event, record.learned):
            return  # MIDI learn: a bound controller moved its parameter
        if self.playhead.check_event(event):
            record.events.append("advance")
            return
        if isinstance(event, ProgramChange) and self._program_jumps(event):
            if self.playhead.jump_to_index(event.program):
                record.events.append("program_jump")
            return
        self.stack.dispatch(event)

    def _after_scenes(self, tick: int, show_time: float, record: TickRecord) -> None:
        """The timer trigger, the sound's and the recorder's news, the scene's status, and the
        figures that measure the machine."""
        events = record.events
        if self.playhead.check_time(show_time):
            events.append("advance")
        events.extend(self.audio.poll())
        if self.recorder is not None:
            events.extend(self.recorder.take_events())
        self.audio.advance(show_time)
        record.sent, record.heard = self.audio.take_sent(), self.audio.take_heard()
        record.status = dict(self.stack.status())
        events.extend(record.status.pop("events", ()))
        loss = record.status.get("loss")
        if self.osc_out is not None and isinstance(loss, (int, float)):
            self.osc_out.send("/showrunner/loss", self.playhead.current.cue.scene, float(loss))
        compilations = _compilations()
        if compilations > self._compilations:
            # Scenes compile in load; a compilation now stalled this tick (and will again).
            log.warning("%d jax compilation(s) during the show at tick %d", compilations - self._compilations,
                        tick)
            self.summary.recompilations += compilations - self._compilations
            self._compilations = compilations
            events.append("recompile")
        record.health = self.audio.health()
        machine = record.machine
        if self._last_frame_ms is not None:
            machine["frame_ms"] = round(self._last_frame_ms, 3)
            if self.display is not None and self.display.gpu_ms is not None:
                machine["gpu_ms"] = round(self.display.gpu_ms, 3)
            if self.recorder is not None and self.recorder.capture_ms is not None:
                machine["capture_ms"] = round(self.recorder.capture_ms, 3)  # the part in the capture
        if self.recorder is not None:
            machine["rec_frames"], machine["rec_dropped"] = self.recorder.frames, self.recorder.dropped
        if self.osc_in is not None:
            machine.update(self.osc_in.counts)

    def _observe(self, record: TickRecord) -> None:
        """The HUD's view of the tick (updated whether or not it is shown)."""
        following = self.playhead.index + 1
        next_cue = self.setlist.cues[following].id if following < len(self.setlist.cues) else ""
        self.hud.observe(self.playhead.current.id, next_cue, record.events, record.status, record.health,
                         self.display.shaders.errors, self._last_frame_ms, self.display.gpu_ms)
        if self.recorder is not None:
            self.hud.state.recording = self.recorder.status()
        if self.osc_in is not None:
            counts = self.osc_in.counts
            self.hud.state.osc = (f"osc {counts['osc_received']} in, {counts['osc_malformed']} bad, "
                                  f"{counts['osc_dropped']} dropped, {counts['osc_unknown']} unknown")
        if self.learn is not None:
            self.hud.show_learn(self.learn.hud_lines(self.playhead.index))

    def _draw(self, alpha: float) -> None:
        if self.display is None:
            return
        started = time.perf_counter()
        self._pending_events.extend(self.display.shaders.reload_changed())
        if self.video is not None:
            self.video.update(self.clock.show_time + alpha * self.clock.dt)
        self.display.begin_frame()
        self.stack.draw(alpha)
        transition = self.playhead.current.cue.transition
        if transition.kind == "fade" and transition.seconds > 0:
            elapsed = self.clock.show_time + alpha * self.clock.dt - self.playhead.cue_started_at
            self.display.fade = min(1.0, max(0.0, elapsed / transition.seconds))
        else:
            self.display.fade = 1.0
        capture = None
        if self.recorder is not None:
            frame_time = self.clock.show_time + alpha * self.clock.dt
            capture = lambda: self.recorder.capture(self.display, frame_time, self._tap_frames())  # noqa: E731
        self.display.end_frame(overlay=self.hud.draw if self.hud is not None else None, capture=capture)
        if self.frame_sink is not None:
            self.frame_sink()
        self._last_frame_ms = (time.perf_counter() - started) * 1000
        self.summary.frames += 1
        self.summary.frame_ms.append(self._last_frame_ms)

    def _program_jumps(self, event: ProgramChange) -> bool:
        """Does this program change ask for a cue? Only when the setlist (or the options) say
        program changes jump, and on the setlist's channel when it names one."""
        midi = self.setlist.settings.midi
        jumps = self.options.program_change_jumps
        if not (midi.program_change_jumps if jumps is None else jumps):
            return False
        return midi.program_change_channel is None or event.channel == midi.program_change_channel - 1

    def _cue_sound(self, cue) -> None:
        """The cue's routing of the MIDI input and its instrument settings, sent as the cue starts
        (before the tick's notes, which it therefore routes)."""
        sound = cue.cue.sound
        rack = self.audio.rack
        names = rack.notes if sound is None or sound.notes is None else sound.notes
        present = [spec.name for spec in rack.instruments]
        self.audio.route([name for name in names if name in present])  # a legacy piano may be off
        self._cue_media(sound.media if sound is not None else [])
        if sound is None:
            return
        for name, values in sound.settings.items():
            if name not in present:
                continue
            instrument = self.audio.instrument(name)
            for parameter, value in values.items():
                if isinstance(value, str) and parameter == "table":
                    value = self.audio.table(value)  # a table, by name
                instrument.set(parameter, value)  # a choice may be a name (checked at load)

    def _cue_media(self, media: list) -> None:
        """Fixed media: what the last cue played stops or fades as it said (carried media plays
        on, unless this cue plays the same table again); this cue's starts with the first block
        after this tick."""
        carried = {}
        for key, (voice, item) in self._media.items():
            if item.end == "carry" and all(m.table != key[1] for m in media):
                carried[key] = (voice, item)
            else:
                release = item.fade if item.end == "fade" else 0.005
                self.audio.instrument(key[0]).stop(voice, release)
        self._media = carried
        for item in media:
            self._media_count += 1
            voice = MEDIA_VOICES + self._media_count % 4096
            self.audio.instrument(item.instrument).play(item.table, voice, gain=10 ** (item.gain_db / 20),
                                                        pan=item.pan, loop=item.loop)
            self._media[(item.instrument, item.table)] = (voice, item)

    # OSC and what scenes emit.
    def _osc_move(self, message: OscMessage, actions: list[KeyAction]) -> bool:
        """A performer's move sent by OSC becomes the tick's action, as a key would (and goes into
        the performance log as one); True when ``message`` was one."""
        move = message.address.removeprefix("/showrunner/")
        if move in ("go", "next", "previous", "restart", "panic"):
            actions.append(KeyAction("go" if move == "next" else move))
            return True
        if move == "jump" and len(message.args) == 1:
            target = message.args[0]
            try:
                index = self.setlist.index_of(target) if isinstance(target, str) and not target.isdigit() \
                    else int(target) - 1
            except (UserError, ValueError, OverflowError):
                index = -1
            if not 0 <= index < len(self.setlist.cues):
                self._osc_problem(message, f"no cue '{target}' (cues 1-{len(self.setlist.cues)} or an id)")
                return True
            actions.append(KeyAction("jump", index))
            return True
        if move == "gain" and len(message.args) == 1:
            step = message.args[0]
            if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) \
                    or abs(step) > 60:
                self._osc_problem(message, "a gain step in dB, -60 to 60")
            else:
                actions.append(KeyAction("gain", int(step)))
            return True
        return False

    def _osc_message(self, message: OscMessage) -> None:
        """What OSC asks of the scenes: a parameter, text; or an address nobody knows (counted)."""
        what = message.address.removeprefix("/showrunner/")
        if what == "param" and len(message.args) in (2, 3):
            *cue, name, value = message.args
            index = self.playhead.index if not cue else None
            if cue:
                try:
                    index = self.setlist.index_of(str(cue[0]))
                except UserError:
                    self._osc_problem(message, f"no cue '{cue[0]}'")
                    return
            problem = self.scenes[index].set_param(str(name), value) if index < len(self.scenes) \
                else "no scene"
            if problem is not None:
                self._osc_problem(message, problem)
            else:
                self._said("osc_param", logging.INFO, "OSC: cue %s's %s = %r",
                           self.setlist.cues[index].id, name, value)
        elif what == "throw" and not message.args:
            if self._source_player is None:
                self._osc_problem(message, "the current cue has no note source")
            else:
                self._throw_requested = True
        elif what == "sound" and len(message.args) == 3:
            name, parameter, value = message.args
            problem = self._set_sound(str(name), str(parameter), value)
            if problem is not None:
                self._osc_problem(message, problem)
            else:
                self._said("osc_sound", logging.INFO, "OSC: instrument %s's %s = %r", name, parameter, value)
        elif what == "text" and message.args:
            text = " ".join(map(str, message.args))
            player = self._source_player
            if player is not None and player.source.take_text(text):
                self._throw_requested = True  # a source that writes from text writes it now
            self.stack.dispatch(TextInput(text, message.time))
        elif not self.stack.dispatch(message):  # a piece's own address, or nobody's
            if self.osc_in is not None:
                self.osc_in.counts["osc_unknown"] += 1

    def _set_sound(self, name: str, parameter: str, value) -> str | None:
        """An instrument's parameter from OSC (``/showrunner/sound NAME PARAMETER VALUE``: a number,
        or a choice by name), as a scene's ``set`` would; what is wrong with it, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or \
                (not isinstance(value, str) and not math.isfinite(value)):
            return f"a finite number or a choice's name, not {value!r}"
        try:
            self.audio.instrument(name).set(parameter, value)
        except (KeyError, ValueError) as error:
            return str(error.args[0]) if error.args else str(error)
        return None

    def _osc_problem(self, message: OscMessage, problem: str) -> None:
        if self.osc_in is not None:
            self.osc_in.counts["osc_unknown"] += 1
        self._said("osc_problem", logging.WARNING, "OSC %s: %s", describe_any(message), problem)

    def _overload(self, tick: int, dropped: int, record: TickRecord) -> None:
        """More input came in one tick than the show takes (a faulty controller, a MIDI loop):
        the excess was left out, counted and said, so frames keep coming."""
        self.summary.overload += dropped
        record.overload += dropped
        if "overload" not in record.events:
            record.events.append("overload")
        if self.hud is not None:
            self.hud.state.last_error = f"MIDI overload: {self.summary.overload} events left out"
        self._said("overload", logging.WARNING, "MIDI overload at tick %d: %d events left out this tick "
                   "(%d in all); the show takes at most %d a tick", tick, dropped, self.summary.overload,
                   self.setlist.settings.midi.max_events_per_tick)

    def _said(self, key: str, level: int, message: str, *args) -> None:
        """Log at most one line a second for ``key`` (a flood must not flood the log), saying how
        many were left unsaid since."""
        now = time.monotonic()
        last, unsaid = self._said_at.get(key, (-1.0, 0))
        if now - last < 1.0:
            self._said_at[key] = (last, unsaid + 1)
            return
        self._said_at[key] = (now, 0)
        log.log(level, message + (f" (and {unsaid} more like it in the last second)" if unsaid else ""),
                *args)

    def _send_emitted(self, tick: int) -> list[str]:
        """Send what the scenes emitted this tick (MIDI out, OSC out); listed for the metrics and
        the performance log (a replay checks that it emits the same)."""
        if not self._outbox:
            if self.replay is not None and self.replay.emitted is not None and tick in self.replay.emitted:
                self._replay_differs(tick, "emitted", self.replay.emitted[tick], [])
            return []
        emitted, self._outbox[:] = list(self._outbox), []
        listed = [describe_any(event) for event in emitted]
        for event in emitted:
            if isinstance(event, MIDI_TYPES):
                if self.midi_out is not None:
                    self.midi_out.send(event)
                if self.osc_out is not None:
                    self.osc_out.send("/showrunner/emit/midi", describe_any(event))
            elif isinstance(event, Emitted) and self.osc_out is not None:
                self.osc_out.send(f"/showrunner/emit/{event.name}", *event.values)
        if self.replay is not None and self.replay.emitted is not None:
            if self.replay.emitted.get(tick, []) != listed:
                self._replay_differs(tick, "emitted", self.replay.emitted.get(tick, []), listed)
        return listed

    def _replay_differs(self, tick: int, what: str, live, replayed) -> None:
        self.summary.replay_differences += 1
        if self.summary.replay_differences == 1:
            log.warning("the replay differs from the live show at tick %d (%.2f s): live %s %s, the "
                        "replay %s", tick, tick * self.clock.dt, what, live, replayed)

    def _check_replayed_cue(self, tick: int, taken: str | None) -> None:
        """A replay takes the cues the live show took, in the same ticks, or says where it did not
        (the setlist's scenes or showrunner changed since: the inputs still come as they came)."""
        live = self.replay.cues.get(tick)
        if live == taken:
            return
        self.summary.replay_differences += 1
        if self.summary.replay_differences == 1:
            log.warning("the replay differs from the live show at tick %d (%.2f s): live took cue %s, the "
                        "replay %s; the inputs are replayed as they came, what follows may differ",
                        tick, tick * self.clock.dt, live or "none", taken or "none")

    def _tap_frames(self) -> int | None:
        """Frames the live audio process has played so far (its tap), or None offline."""
        return self.audio.tap_frames()

    # Performer input from the window.
    def _handle_window_events(self, now: float) -> None:
        if self.display is None or not self.display.windowed:
            return
        import pygame

        for event in self.display.poll_events():
            if event.type == pygame.QUIT:
                self._quit = True
            elif event.type == pygame.KEYDOWN:
                self.apply_key(self.keyboard.key_down(pygame.key.name(event.key)), now)
            elif event.type == pygame.KEYUP:
                self.apply_key(self.keyboard.key_up(pygame.key.name(event.key)), now)

    def apply_key(self, action: KeyAction | None, now: float) -> None:
        """Carry out a keyboard action. Notes join the MIDI queue stamped ``now``; the HUD and quit
        act at once; cue moves, panic and gain act at the next tick (and go into the performance
        log with it)."""
        if action is None:
            return
        match action.kind:
            case "hud":
                if self.hud is not None:
                    self.hud.toggle()
            case "quit":
                self._quit = True
            case "note_on" | "note_off":
                event = NoteOn(action.value, VELOCITY) if action.kind == "note_on" \
                    else NoteOff(action.value, 0)
                self.queue.push(now, event)
                if self.audio.hears_midi:  # it will not hear the computer keyboard: tell it now
                    self.audio.play(event, listed=False)  # listed when the tick delivers it
            case "learn" | "learn_leave" | "learn_choose" | "learn_bind" | "learn_unbind":
                self._learn_key(action)
            case "text_edit" | "text_cancel":
                typing = f"  typing: {action.text}_" if action.kind == "text_edit" else ""
                if self.display is not None:
                    self.display.set_caption(f"{self.setlist.settings.title}{typing}")
            case "text_send":  # as OSC /showrunner/text would, at the next tick (and logged so)
                self._typed.append(OscMessage("/showrunner/text", (action.text,), now))
            case kind if kind in TICK_ACTIONS:
                self._pending_actions.append(action)

    def _act(self, action: KeyAction) -> None:
        """A performer move, at the start of a tick."""
        match action.kind:
            case "throw":
                self._throw_requested = True
            case "go":
                self.playhead.go()
            case "previous":
                self.playhead.previous()
            case "jump":
                self.playhead.jump_to_index(action.value)
            case "restart":
                self.playhead.restart()
            case "panic":
                self.audio.panic()
                log.warning("panic: all sound stopped")
            case "gain":
                self.master_gain_db = min(12.0, max(-60.0, self.master_gain_db + action.value))
                self.audio.set_gain("master", self.master_gain_db)
                log.info("master gain %+.0f dB", self.master_gain_db)


    # MIDI learn (engine/midi_learn.py).
    def _learn_key(self, action: KeyAction) -> None:
        """A learn-mode key: the HUD's part acts at once; a binding made or removed acts at the
        next tick (and goes into the performance log with it)."""
        index = self.playhead.index
        match action.kind:
            case "learn":
                self.learn.toggle()
            case "learn_leave":
                self.learn.leave()
            case "learn_choose":
                self.learn.choose(action.value, index)
            case "learn_bind" | "learn_unbind":
                change = self.learn.request_bind(index) if action.kind == "learn_bind" \
                    else self.learn.request_unbind(index)
                if change is not None:
                    self._pending_learn.append(change)
        self.keyboard.learning = self.learn.active
        if self.hud is not None:
            self.hud.show_learn(self.learn.hud_lines(index))

    def _learn_change(self, change: LearnChange, events: list[str]) -> None:
        """A binding made or removed, at the start of a tick; saved to the learn file (live)."""
        problem = self.learn.apply(change)
        events.append("midi_bind" if change.op == "bind" else "midi_unbind")
        binding = change.binding
        log.info("MIDI learn: %s %s in cue %s", "bound" if change.op == "bind" else "unbound",
                 binding.describe(), binding.cue)
        if problem is not None:
            log.error("MIDI learn: %s (the binding holds until the show ends)", problem)
            if self.hud is not None:
                self.hud.state.last_error = problem

    def _learned(self, event: ControlChange, learned: list) -> bool:
        """A controller change at a tick: captured in learn mode (live); when bound in the current
        cue, its parameter is set (validated by the scene) and True is returned (consumed)."""
        index = self.playhead.index
        if self.learn.active and self.replay is None:
            self.learn.capture(event, index)
        found = self.learn.take(event, index)
        if found is None:
            return False
        binding, value = found
        problem = self.scenes[index].set_param(binding.parameter, value) if index < len(self.scenes) \
            else "no scene"
        if problem is not None:
            self._said("learn_problem", logging.WARNING, "MIDI learn: cue %s's %s = %r refused: %s",
                       binding.cue, binding.parameter, value, problem)
        else:
            learned.append([binding.cue, binding.parameter, value])
            self._said("learn_param", logging.INFO, "MIDI learn: cue %s's %s = %s", binding.cue,
                       binding.parameter, f"{value:.4g}" if isinstance(value, float) else value)
        return True

    def _scene_failed(self, scene: Scene, hook: str, error: BaseException) -> None:
        key = (id(scene), hook)
        count = self._error_counts.get(key, 0) + 1
        self._error_counts[key] = count
        self._pending_events.append("scene_error")
        if count == 1 or count % 600 == 0:  # a scene failing every tick must not flood the log
            log.error("scene %s: %s raised %s: %s (the show goes on; %d so far)", type(scene).__name__,
                      hook, type(error).__name__, error, count, exc_info=count == 1)
