"""``ear``: the artificial ear on stage. It listens to the show (its neurons lit as a graph, the
scaleogram scrolling beside them) and dreams loops: clips optimised so that a chosen region of
neurons fires, played by a sampler, each new one taking over at the current one's loop end.

**Listening.** Every ``1 / listen_rate`` s the ear hears the show's sound that came since it last
listened (``listen``: "mix", what the audience hears, the ear's loops included; "input", the
microphone or line, the input file in renders): only the new frames go through it
(scenes/ear/listen.py, numpy, off XLA's pool); each neuron is lit by its normalised activation at
its layer's newest step, ``relu((pre - mean) / std)`` under the statistics of the data it learned,
and the scaleogram of the last 4 s scrolls beside them.

**Dreaming** (``dream = true``). A loop of ``bars`` 4/4 bars at ``tempo`` (2 bars at 120 bpm: 4 s)
starts from ``start`` ("silence", "noise", "sample": pool table ``sample``, "show": the last
seconds of the show's sound) and takes ``steps_per_loop`` steps of input optimisation
(scenes/ear/dream.py) towards the region: layer ``layer`` (0 .. 7: e0, e1, e2, e3, code, a0, a1,
context), channels ``channel`` .. ``channel + channel_width``, bins ``band_low`` .. ``band_high``
(fractions, low to high), time ``time_low`` .. ``time_high``, with the regularisers' strengths
``shift``, ``pitch``, ``mask``, ``noise``, ``denoise`` and step ``rate``. With ``morph``, every loop
after the first starts from the one before it: a slow acoustic morph. The finished loop (mixed
with ``mix`` of its start material, its seam closed) is written into one of two pool tables
(``tables``) and the sampler ``instrument`` plays it looped; the next finished loop goes into the
other table and is queued: the voice moves to it at its loop end, with the sampler's cross-fade (no
gap, no click). The next loop is computed while the current one plays and waits when it is done.

**Steering.** Every parameter above is a scene parameter: on MIDI controllers (MIDI learn) and OSC
(``/showrunner/param``). With ``piano_steers``, a piano note picks the band: the bins of the note
and a semitone either side (bin = note - 28), so playing steers what the ear listens for.

Listening and dreaming run beside the show live (two threads, never in a tick, never in the audio
callback) and in the tick in renders (``render_steps_per_tick`` dream steps a tick, a listen every
``1 / listen_rate`` s of show time), so renders are identical.
"""

from __future__ import annotations

import os
import threading
import time
from math import gcd
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field
from scipy.signal import resample_poly

from engine.midi import NoteOn
from engine.scene import Scene, SceneParams
from scenes.ear import dream, listen, network

VOICE = 0x7E00  # the sampler voice the loops play on (a scene voice id)


class EarParams(SceneParams):
    checkpoint: str = Field(description="the ear's checkpoint (showrunner train ear), setlist-relative")
    listen: Literal["mix", "input", "off"] = "mix"
    listen_rate: float = Field(30.0, ge=1.0, le=60.0, description="listens a second")
    dream: bool = True
    layer: int = Field(2, ge=0, le=len(network.LAYERS) - 1, description="target layer")
    channel: float = Field(0.5, ge=0.0, le=1.0, description="first target channel, a fraction")
    channel_width: float = Field(0.03, ge=0.0, le=1.0)
    band_low: float = Field(0.3, ge=0.0, le=1.0, description="target bins from, a fraction")
    band_high: float = Field(0.4, ge=0.0, le=1.0, description="target bins to, a fraction")
    time_low: float = Field(0.0, ge=0.0, le=1.0)
    time_high: float = Field(1.0, ge=0.0, le=1.0)
    shift: float = Field(0.25, ge=0.0, le=1.0)
    pitch: float = Field(0.3, ge=0.0, le=2.0, description="semitones")
    mask: float = Field(0.1, ge=0.0, le=0.9)
    noise: float = Field(0.3, ge=0.0, le=2.0)
    denoise: float = Field(0.1, ge=0.0, le=1.0)
    rate: float = Field(0.003, ge=0.0001, le=0.05)
    start: Literal["silence", "noise", "sample", "show"] = "silence"
    sample: str | None = Field(None, description="pool table to start from (start = sample)")
    morph: bool = True
    mix: float = Field(0.0, ge=0.0, le=1.0, description="of the start material in the loop")
    steps_per_loop: int = Field(40, ge=1, le=1000)
    tempo: float = Field(120.0, ge=30.0, le=300.0)
    bars: float = Field(2.0, ge=0.25, le=4.0)
    instrument: str = "loops"
    tables: tuple[str, str] = ("ear_a", "ear_b")
    gain: float = Field(0.8, ge=0.0, le=2.0)
    piano_steers: bool = True
    render_steps_per_tick: int = Field(1, ge=1, le=100)
    train: bool = False
    learning_rate: float = Field(1e-3, gt=0.0, le=0.1)
    render_train_steps_per_tick: float = Field(0.1, ge=0.0, le=10.0)
    train_duty: float = Field(1.0, ge=0.01, le=1.0, description="learning live: the share of the time it trains "
                                                               "(it rests after each step)")
    # Measured on 2 CPUs, learning / idle frame p99: 1.58x with the steps in a process against
    # 1.21x in a thread (3 interleaved rounds of 10 s): a process leaves the show's CPUs unsplit,
    # and the dreams' jax (in the show's process) then runs on the show's CPU too. So a thread.
    train_process: bool = Field(False, description="learning live: train in a process of its own that waits "
                                                    "while the show works on a frame (false: a thread of the show)")
    detune_scale: float = Field(0.0, ge=0.0, le=0.1, description="learning: detune = this x the loss")
    distort_scale: float = Field(0.0, ge=0.0, le=2.0, description="learning: each loop written is soft-clipped "
                                                                  "at drive = this x the loss")


def loop_frames(tempo: float, bars: float) -> int:
    """Scaleogram frames of a loop of ``bars`` 4/4 bars at ``tempo``: a multiple of 4 (the code's
    rate), at least one code's receptive field."""
    seconds = bars * 4 * 60.0 / tempo
    return max(16, int(round(seconds * network.RATE / network.HOP / 4)) * 4)


class _Thread:
    """A loop on a thread of its own, woken by :meth:`wake`; ends when closed or once the main
    thread has (after its current round: a process that exits while XLA computes aborts)."""

    def __init__(self, work, name: str) -> None:
        self.work = work
        self._wake = threading.Event()
        self._stopped = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        from engine.learners.trainer import lower_training_priority

        try:  # this thread under the show's (it mostly waits for XLA, the GIL released)
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError):
            pass
        main = threading.main_thread()
        while not self._stopped and main.is_alive():
            if not self._wake.wait(0.1):
                continue
            self._wake.clear()
            try:
                self.work(lambda: self._stopped or not main.is_alive())
                # XLA's compute pool below the show's thread (SCHED_IDLE; see the trainer)
                lower_training_priority(19)
            except Exception as error:  # the show goes on with what it has
                self.error = error

    def close(self) -> None:
        self._stopped = True
        self._wake.set()


class Ear(Scene):
    name = "ear"
    Params = EarParams
    snapshot_loaded = ("graph",)  # engine.snapshot: made at load, never changed

    def load(self) -> None:
        from scenes.ear import layout
        from scenes.ear.learner import load_ear

        path = self.context.path(self.params.checkpoint)
        state = load_ear(path)
        self.trainer = None
        if self.params.train:
            from scenes.ear.learner import EarConfig, EarCpc

            # it learns from what it hears alone, from the first clip heard on (see _learn)
            learner = EarCpc.for_playing(EarConfig(live_share=1.0, learning_rate=self.params.learning_rate))
            # own_cores=True: the listener is numpy now (scenes/ear/listen.py), off XLA's pool, so
            # the split keeps training off the show's CPU (measured, 4 rounds of 8 s on 2 CPUs: learning/idle
            # frame p99 median 1.10x at 4.9 steps/s split, 1.35x at 5.7 steps/s shared)
            self.trainer = self.context.trainer(learner, "ear", steps_per_tick=self.params.render_train_steps_per_tick,
                                                own_cores=True, duty=self.params.train_duty,
                                                process=self.params.train_process)
            self.trainer.load()
            self.trainer.restore(path)
            state = self.trainer.latest.state
        self.model = (state.params, state.mean, state.var)
        self.steps_trained = int(state.steps)
        self.graph = layout.neuron_graph()
        var = {k: np.asarray(v) for k, v in state.var.items()}
        self.positions = layout.cached_layout(path, self.graph, layout.charges(self.graph, var))
        audio = self.context.audio
        self.rate = audio.rack.sample_rate if audio.rack is not None else 48000
        self.show_clip = int(np.ceil(network.CLIP * self.rate / network.RATE)) + listen.TAPS
        self.dreamer = dream.Dreamer()
        self._reset()
        from engine.audio.control import NoAudio

        self.can_play = audio.pool is not None and self.params.dream and not isinstance(audio, NoAudio)
        if self.can_play:
            for table in self.params.tables:
                audio.table(table)  # a missing table is a one-line error at load
            audio.instrument(self.params.instrument)
            capacity = audio.pool.capacity(audio.table(self.params.tables[0]))
            needed = self._show_frames(loop_frames(self.params.tempo, self.params.bars) * network.HOP)
            if capacity < needed:
                raise ValueError(f"table '{self.params.tables[0]}' holds {capacity} frames; a loop of "
                                 f"{self.params.bars} bars at {self.params.tempo} bpm needs {needed}")
        self.picture = None
        if self.context.gl is not None:
            from scenes.ear.picture import Picture

            self.picture = Picture(self.context, self)
        # Compile now (never on stage): a key split and a dream step for the target layer (another
        # layer, chosen live, compiles on the dreamer's thread: about 2 s).
        self._listen_once(self._recent(0), 0)
        if self.params.dream:
            frames = loop_frames(self.params.tempo, self.params.bars)
            key, sub = jax.random.split(jax.random.PRNGKey(np.uint32(self.context.seed_for("loop", "0"))))
            clip = jnp.asarray(dream.start_material("silence", frames * network.HOP, 0))
            clip, value = self.dreamer.step(*self.model, clip, sub, self.target(), self.regularisers())
            float(value), np.asarray(clip)

    def _reset(self) -> None:
        self.time = 0.0
        self.listened_at = -1.0
        self.heard: tuple[np.ndarray, np.ndarray] | None = None  # (scaleogram, activations)
        self.heard_image: bytes | None = None  # the scaleogram as the picture's texture shows it
        self.listens = 0
        self.lock = threading.Lock()
        self.loop: np.ndarray | None = None  # the loop being dreamed (22,050 Hz)
        self.start_clip: np.ndarray | None = None
        self.loop_step = 0
        self.begin = True  # the next dream step begins a loop
        self.loop_value = 0.0
        self.learning = False  # training on stage has begun (from the first clip heard on)
        self.loss = 0.0  # the newest training loss, once learning
        self.drives: list[float] = []  # the distortion drive of each loop finished: the last 16
        self.loops_made = 0
        self.finished: tuple[np.ndarray, np.ndarray, float] | None = None  # (loop, to play, value)
        self.playing: str | None = None
        self.next_table = 0
        self.queued_at = -1e9
        self.loops_played = 0
        self.played: list[tuple[float, str, np.ndarray]] = []  # (show time, table, data): the last 16
        self.loop_times: list[tuple[float, float]] = []  # (started, finished) of each loop (live: wall)
        self._loop_began = 0.0
        self.listener: _Thread | None = None
        self.dreaming: _Thread | None = None
        self._sound: tuple[np.ndarray, int] | None = None  # (the show's newest sound, its end) to listen to
        self.hearing = listen.Listener(self.rate)
        self._show_sound: np.ndarray | None = None
        self.ring = np.zeros(self.show_clip, np.float32)  # the show's last 4 s at its rate, mono
        self.ring_at = 0  # frames ever appended
        self.fed_at = 0.0
        self.fed = 0  # scaleogram frames fed to the trainer
        self.model_steps = 0
        self.heard_at = 0  # the show's sound read up to here (AudioOut.heard_since)

    # The ear's functions ---------------------------------------------------------------------------
    @staticmethod
    def hear(params, mean, var, clip: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A clip (N,) at 22,050 Hz -> its scaleogram (T, 96) and every drawn neuron's normalised
        activation at the newest time step, in the graph's order (layer, bin, channel): the whole
        clip in jax, the peer of :class:`scenes.ear.listen.Listener` in the benchmark."""
        spectrum = network.scaleogram(clip[None])
        layers = network.forward(params, spectrum)
        lit = []
        for name in network.LAYERS:
            pre = layers[name][0, -1]
            std = jnp.sqrt(jnp.maximum(var[name], dream.STD_FLOOR ** 2))
            lit.append(jax.nn.relu((pre - mean[name]) / std).ravel())
        return spectrum[0], jnp.concatenate(lit)

    def target(self) -> dream.Target:
        p = self.params
        low, high = sorted((p.band_low, p.band_high))
        return dream.Target(layer=network.LAYERS[p.layer], channels=(p.channel, p.channel + p.channel_width),
                            bins=(low, high), time=tuple(sorted((p.time_low, p.time_high))))

    def regularisers(self) -> dream.Regularisers:
        p = self.params
        return dream.Regularisers(shift=p.shift, pitch=p.pitch, mask=p.mask, noise=p.noise,
                                  denoise=p.denoise, rate=p.rate)

    def _show_frames(self, frames: int) -> int:
        rate = self.context.audio.rack.sample_rate if self.context.audio.rack else 48000
        return int(np.ceil(frames * rate / network.RATE))

    def _to_ear(self, sound: np.ndarray) -> np.ndarray:
        """Sound at the show's rate ((frames,) or (frames, channels)) -> mono at 22,050 Hz."""
        mono = sound.mean(axis=1) if sound.ndim == 2 else sound
        if self.rate != network.RATE and len(mono):
            g = gcd(network.RATE, self.rate)
            mono = resample_poly(mono, network.RATE // g, self.rate // g)
        return np.nan_to_num(np.asarray(mono, np.float32))

    def _to_show(self, loop: np.ndarray) -> np.ndarray:
        if self.rate == network.RATE:
            return loop.astype(np.float32)
        g = gcd(network.RATE, self.rate)
        return np.clip(resample_poly(loop, self.rate // g, network.RATE // g), -1.0, 1.0).astype(np.float32)

    # Listening -----------------------------------------------------------------------------------
    def _append(self, sound: np.ndarray) -> None:
        """The show's newest sound (frames, 2) into the ring of its last 4 s (mono)."""
        mono = sound.mean(axis=1) if sound.ndim == 2 else sound
        mono = mono[-len(self.ring):]
        count, size = len(mono), len(self.ring)
        first = self.ring_at % size
        end = min(size, first + count)
        self.ring[first:end] = mono[:end - first]
        self.ring[:count - (end - first)] = mono[end - first:]
        self.ring_at += count

    def _recent(self, frames: int | None = None) -> np.ndarray:
        """The ring's last ``frames`` (all of it by default), oldest first, a copy (only those are
        copied: a listen in the tick reads a 30th of a second, not the 4 s)."""
        count = len(self.ring) if frames is None else min(frames, len(self.ring))
        at = self.ring_at % len(self.ring)
        if count <= at:
            return self.ring[at - count:at].copy()
        return np.concatenate([self.ring[at - count:], self.ring[:at]])

    def _listen_once(self, sound: np.ndarray, end: int) -> None:
        self.heard = self.hearing.hear(self.model, sound, end)
        if self.picture is not None:  # the scaleogram's image made here (live: the listener's thread), not in a frame
            self.heard_image = self.picture.scaleogram_image(self.heard[0])
        self.listens += 1

    def _newest(self) -> tuple[np.ndarray, int]:
        """The show's sound the next listen needs (what came since the last), and its end."""
        return self._recent(self.hearing.needed(self.ring_at)), self.ring_at

    def _listener_work(self, stopped) -> None:
        newest, self._sound = self._sound, None
        if newest is not None:
            self._listen_once(*newest)

    # Dreaming ------------------------------------------------------------------------------------
    def _begin_loop(self) -> None:
        p = self.params
        frames = loop_frames(p.tempo, p.bars) * network.HOP
        seed = self.context.seed_for("loop", str(self.loops_made))
        if p.morph and self.loop is not None and len(self.loop) == frames:
            material = self.loop.copy()
            start = self.start_clip if self.start_clip is not None else material
        else:
            sound = None
            if p.start == "sample" and p.sample and self.context.audio.pool is not None:
                table = self.context.audio.pool.table(self.context.audio.table(p.sample))
                sound = self._to_ear(np.asarray(table))
            elif p.start == "show":
                sound = self._to_ear(self._show_sound if self._show_sound is not None else
                                     self._recent(self._show_frames(frames)))
            material = dream.start_material(p.start if sound is not None else
                                            ("noise" if p.start == "noise" else "silence"), frames, seed, sound)
            start = material.copy()
        self.loop, self.start_clip, self.loop_step = material, start, 0
        self.key = jax.random.PRNGKey(np.uint32(seed))
        self._loop_began = time.perf_counter() if not self.context.paced else self.time

    def _dream_steps(self, count: int) -> None:
        """Up to ``count`` steps of the loop being dreamed; a finished loop waits to be taken
        (the next begins once it is: from it, with ``morph``)."""
        if self.finished is not None:
            return
        if self.begin:
            self.begin = False
            self._begin_loop()
        target, reg = self.target(), self.regularisers()
        clip = jnp.asarray(self.loop)
        for _ in range(count):
            self.key, sub = jax.random.split(self.key)
            clip, value = self.dreamer.step(*self.model, clip, sub, target, reg)
            self.loop_step += 1
            self.loop_value = float(value)
            if self.loop_step >= self.params.steps_per_loop:
                break
        self.loop = np.asarray(clip)
        if self.loop_step >= self.params.steps_per_loop:
            finished = time.perf_counter() if not self.context.paced else self.time
            self.loop_times.append((self._loop_began, finished))
            self.loops_made += 1
            self.begin = True
            mix = self.params.mix
            data = np.clip(dream.seamless((1 - mix) * self.loop + mix * self.start_clip) * self.params.gain, -1.0, 1.0)
            drive = self.params.distort_scale * self.loss if self.learning else 0.0
            data = dream.distorted(data, drive)  # the loss distorts the loop (0: as it is)
            self.drives.append(drive)
            del self.drives[:-16]
            # resampled here (the dreamer's thread live), not in the tick that plays it
            self.finished = (self.loop.copy(), self._to_show(data), self.loop_value)

    def _dream_work(self, stopped) -> None:
        while not stopped() and self.params.dream and self.finished is None:
            self._dream_steps(1)

    def _play_finished(self) -> None:
        """The newest finished loop into the idle table: played (the first) or queued for the
        current loop's end; only once the previous queue has taken effect. With the sound off,
        loops are taken at the same pace, unheard."""
        if self.finished is None:
            return
        seconds = loop_frames(self.params.tempo, self.params.bars) * network.HOP / network.RATE
        if self.playing is not None and self.time - self.queued_at < seconds + 0.05:
            return
        _loop, written, _value = self.finished
        table = self.params.tables[self.next_table]
        if self.can_play:
            audio = self.context.audio
            if not audio.write_table(table, written):
                return  # the table's previous swap is still pending: next tick
            self.played.append((self.time, table, written))
            del self.played[:-16]
            sampler = audio.instrument(self.params.instrument)
            if self.playing is None:
                sampler.play(table, VOICE, gain=1.0, loop=True)
            else:
                sampler.queue(VOICE, table)
        self.playing, self.queued_at = table, self.time
        self.next_table = 1 - self.next_table
        self.loops_played += 1
        self.finished = None
        if self.dreaming is not None:
            self.dreaming.wake()

    # The show ------------------------------------------------------------------------------------
    def enter(self) -> None:
        self._reset()
        self.learning = False
        if self.trainer is not None:
            self.model_steps = -1  # take the trainer's state at the first tick
        if not self.context.paced:
            self.listener = _Thread(self._listener_work, "ear listener")
            if self.params.dream:
                self.dreaming = _Thread(self._dream_work, "ear dreamer")
                self.dreaming.wake()

    def exit(self) -> None:
        if self.trainer is not None:
            self.trainer.stop()
        for thread in (self.listener, self.dreaming):
            if thread is not None:
                thread.close()
        self.listener = self.dreaming = None
        if self.can_play and self.playing is not None:
            self.context.audio.instrument(self.params.instrument).stop(VOICE)
        self.playing = None

    def on_midi(self, event) -> bool:
        if self.params.piano_steers and isinstance(event, NoteOn) and event.velocity > 0:
            k = network.note_bin(event.note)
            self.params = self.params.model_copy(update={
                "band_low": max(0, k - 1) / network.BINS, "band_high": min(network.BINS, k + 2) / network.BINS})
        return False  # the notes still sound

    def _learn(self) -> None:
        """Training on stage: the newest model for listening and dreaming; every clip's length
        of show time, the frames heard since the last feed go to the trainer."""
        seen = self.trainer.seen
        if seen.steps != self.model_steps:
            state = seen.state
            self.model, self.model_steps = (state.params, state.mean, state.var), seen.steps
            if self.learning:
                loss = float(seen.summary["loss"])
                self.loss = loss if np.isfinite(loss) else 0.0  # and the dreamer's loops: _dream_steps
                if self.params.detune_scale > 0:  # its loss detunes the overtones
                    self.context.audio.detune(self.params.detune_scale * self.loss)
        clip_seconds = network.CLIP / network.RATE
        if self.heard is not None and self.time - self.fed_at >= clip_seconds - 1e-9:
            count = min(network.CLIP_FRAMES, int(round((self.time - self.fed_at) * network.RATE / network.HOP)))
            self.fed_at = self.time
            if self.trainer.feed({"frames": np.asarray(self.heard[0], np.float32), "count": np.int32(count)}):
                self.fed += count
                if not self.learning:  # it learns from the first clip heard on (never from silence)
                    self.learning = True
                    self.trainer.start()

    def tick(self, dt: float) -> None:
        self.time += dt
        p = self.params
        if self.trainer is not None:
            self.trainer.duty = p.train_duty  # moved live by a controller or OSC
            self._learn()
        if p.listen != "off" or (p.dream and p.start == "show"):
            sound, self.heard_at = self.context.audio.heard_since(self.heard_at, "input" if p.listen == "input" else "mix")
            self._append(sound)
        if p.listen != "off" and self.time - self.listened_at >= 1.0 / p.listen_rate - 1e-9:
            self.listened_at = self.time
            if self.listener is None:
                self._listen_once(*self._newest())
            else:
                self._sound = self._newest()
                self.listener.wake()
        if p.dream:
            if p.start == "show" and self.dreaming is not None and self.begin:
                self._show_sound = self._recent()
            if self.dreaming is None:
                self._dream_steps(p.render_steps_per_tick)
            self._play_finished()

    def draw(self, alpha: float) -> None:
        if self.picture is not None:
            self.picture.draw(self)

    def status(self) -> dict[str, Any]:
        status = {"listens": self.listens, "loops": self.loops_played, "dream_step": self.loop_step,
                  "target": round(self.loop_value, 4), "layer": network.LAYERS[self.params.layer],
                  "band": [round(self.params.band_low, 3), round(self.params.band_high, 3)]}
        if self.trainer is not None:
            summary = self.trainer.seen.summary
            status.update(steps=int(self.trainer.seen.steps), loss=float(summary["loss"]),
                          accuracy=float(summary["accuracy"]), heard=self.fed,
                          drive=round(self.drives[-1], 4) if self.drives else 0.0)
        return status
