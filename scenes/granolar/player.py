"""``vae_grains``: the grain VAE trained beside the show and played as an instrument (point mode).

The scene learns grains of pool tables (``sources``: recordings of ``[sound.samples]``) with a
:class:`~scenes.granolar.learner.GrainVae` trained by the show's trainer (live in the background,
``render_steps_per_tick`` steps a tick in renders, as the live show did in replays), from scratch
or from a ``checkpoint`` (``showrunner train vae``).

**The point.** A latent point in principal coordinates: ``z0`` .. ``z15`` (scene parameters, so
MIDI learn and ``/showrunner/param`` move them) or OSC ``/latent`` with 16 numbers (a NaN, an
infinity or a wrong count is dropped and counted). The latent dimensions are ordered by a PCA of
the encoded training grains (256 of them), so ``z0`` moves along the direction the grains differ
most and the first knobs matter most; each coordinate counts in that direction's standard
deviations.

**The sound.** ``grains`` points around the point (``spread`` standard deviations of jitter; in
``trajectory`` mode, evenly spaced along the straight line from the point's mirror image through
the centre to the point, the report's fix for the decoder's latency) are decoded and overlap-added
with a Hann window at hop 256 into pool table ``table`` (a trajectory reads like a sound file,
morphing from one end to the other), which a
granulator of the rack plays from the piano (the cue routes notes to it): its notes pick the pitch
and its velocity the level, as in the grains piece. The table is decoded again when the point moves
(a decode only: 32 grains in chunks of 8, live side by side on the cores: 3.7 ms median on two
cores here; live, an OSC move is first heard from 8 grains decoded at the new point, each
repeated over four slots, written the moment they are decoded, then from the full table) and, while the model learns, every ``decode_every`` seconds with the principal axes
found again for the model as it is (about 75 ms), so the audience hears it get better.

**Listening.** With ``listen = "input"`` (the microphone or line; the input file in renders) or
``"mix"`` (the show's own sound, the VAE's included), every ``listen_every`` seconds that much of
the sound is cut into grains (the quiet ones dropped) and fed to the model, which draws
``live_share`` of every minibatch from the latest 4,096 grains it heard.

Decoding and the axes run beside the show live (two worker threads, so a move never waits for
the axes: never in a tick, never in the audio callback) and in the tick in renders, so renders are identical. Every decoded sample is finite and
within -1..1 before it reaches the table.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, create_model

from engine import training_cores
from engine.events import OscMessage
from engine.scene import Scene, SceneParams
from scenes.granolar.data import cut_grains, grain_set
from scenes.granolar.learner import FEED, GrainVae, VaeConfig
from scenes.granolar.vae import DECODE_CHUNK, GRAIN, LATENT, decode_numpy, prepare_decoder

HOP = GRAIN // 2
# Live, an OSC move is heard first from a table of this many grains decoded at the new point (one
# product of DECODE_CHUNK: a quarter of the 32-grain decode), each repeated over the table's slots;
# the full table follows at once. Its first grain is the point's own, as in the full decode.
EXPRESS = 8
PCA_GRAINS = 256
LATENT_ADDRESSES = ("/latent", "/showrunner/latent")


class _Base(SceneParams):
    sources: list[str] = Field(min_length=1, max_length=32, description="pool tables to learn")
    mode: Literal["point", "trajectory"] = Field(
        "point", description="grains around the point, or along the line through the centre to it")
    table: str = Field("vae", description="the pool table the decoded grains are written into")
    grains: int = Field(32, ge=1, le=256, description="grains decoded around the point")
    spread: float = Field(0.3, ge=0, le=4, description="their jitter, in standard deviations")
    decode_every: float = Field(0.5, gt=0, le=60, description="seconds between decodes while learning")
    train: bool = Field(True, description="the model learns during the cue")
    checkpoint: str | None = Field(
        None, description="start from this checkpoint (a path, relative to the setlist's folder)")
    render_steps_per_tick: float = Field(0.1, ge=0, le=10, description="training steps a tick in renders")
    train_duty: float = Field(1.0, ge=0.01, le=1, description="live, the share of the time the model trains "
                                                             "(it rests after each step; renders: render_steps_per_tick)")
    train_process: bool = Field(True, description="live, train in a process of its own that waits while "
                                                   "the show works on a frame (false: a thread of the show)")
    listen: Literal["off", "input", "mix"] = Field(
        "off", description="also learn what the show hears: its audio input, or its own mix")
    listen_every: float = Field(2.0, ge=0.25, le=2.5, description="seconds of sound fed to the model at a time")
    live_share: float = Field(0.5, ge=0, le=1, description="share of each minibatch from the sound heard")
    batch: int = Field(16, ge=1, le=256)
    beta: float = Field(0.5, gt=0, le=100)
    learning_rate: float = Field(2e-3, gt=0, le=1)


VaeGrainsParams = create_model(
    "VaeGrainsParams", __base__=_Base,
    **{f"z{k}": (float, Field(0.0, ge=-4, le=4, description=f"latent coordinate {k} (standard deviations)"))
       for k in range(LATENT)})


@dataclass
class Decoded:
    """What one decode made: the table, the point's 2-D place and the training grains' (the first
    two principal coordinates), the decoded grain at the point and its nearest training grain."""

    table: np.ndarray
    point_2d: np.ndarray
    grains_2d: np.ndarray
    grain: np.ndarray
    nearest: np.ndarray
    request: int
    point: np.ndarray  # the latent point decoded (principal coordinates)
    written_at: float = 0.0  # live, written by the decoder itself: when (perf_counter)
    express: bool = False  # a move's first table: EXPRESS grains decoded, repeated (the full one follows)


def _latent(values) -> np.ndarray | None:
    """16 finite numbers as a latent point (clipped to -4..4), else None."""
    try:
        point = np.array([float(v) for v in values], np.float32)
    except (TypeError, ValueError):
        return None
    if point.shape != (LATENT,) or not np.isfinite(point).all():
        return None
    return np.clip(point, -4.0, 4.0)


def _beside_training() -> None:
    """The calling thread (a decoder's) goes where training runs, away from the show's frames: the
    training half of the CPUs while a trainer thread has split them, and always on the CPUs a
    training process runs on (engine.learners.training_process: numpy at normal priority there
    runs ahead of the idle process). Measured, granolar live on 2 CPUs with training in a process:
    frame p99 training / not 1.29x with the decoders on every CPU."""
    from engine.learners.training_process import training_cpus

    try:
        os.sched_setaffinity(0, training_cpus())
    except (OSError, AttributeError):
        pass
    training_cores.assign(training_cores.TRAINING)


class _Worker:
    """Live: one job at a time on a thread of its own (a decode, or the principal axes); the
    newest request wins. Made when the cue enters; the thread ends when it exits or once the main
    thread has (after its current job: a process that exits while XLA computes on another thread
    aborts)."""

    def __init__(self, compose, name: str, write=None) -> None:
        self.compose = compose
        self.write = write  # live sound: the worker writes each decoded table itself, at once
        self.written: deque[tuple[float, np.ndarray, bool]] = deque(maxlen=4096)  # (when, point, express)
        self._pending = None
        self._result: Any = None
        self._wake = threading.Event()
        self._stopped = False
        self.busy = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.start()

    def request(self, job) -> None:
        self._pending = job
        self._wake.set()

    def take(self) -> Any:
        result, self._result = self._result, None
        return result

    def _run(self) -> None:
        _beside_training()
        try:
            main = threading.main_thread()
            while not self._stopped and main.is_alive():
                if not self._wake.wait(0.1):
                    continue
                self._wake.clear()
                job, self._pending = self._pending, None
                if job is not None:
                    self._do(job)
        finally:
            training_cores.unassign()

    def _do(self, job) -> None:
        """One job: composed, written (live sound), kept for the scene's next tick. An express job
        (its last item True: a move's first table) is followed by the same job in full, unless a
        newer one is waiting by then."""
        self.busy = True
        try:
            result = self.compose(*job)
            if self.write is not None and not self._written(result):
                return
            self._result = result
            if job[-1] is True and self._pending is None and not self._stopped:
                self._do(job[:-1])
        except Exception as error:  # the show goes on with the table it has
            self.error = error
        finally:
            self.busy = False

    def _written(self, result) -> bool:
        """Write ``result``'s table; the previous table's swap is pending for at most a block or
        two. False when the worker stops or the audio process never takes it."""
        deadline = time.monotonic() + 0.2
        while not self.write(result.table):
            if self._stopped or time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        result.written_at = time.perf_counter()
        self.written.append((result.written_at, result.point, result.express))
        return True

    def close(self) -> None:
        self._stopped = True
        self._wake.set()


class VaeGrains(Scene):
    name = "vae_grains"
    Params = VaeGrainsParams

    def load(self) -> None:
        import jax

        audio, params = self.context.audio, self.params
        pool = audio.pool
        if pool is None:
            raise ValueError("the scene needs the sample pool: a [sound] table with its sources")
        sounds = {name: pool.table(audio.table(name)) for name in params.sources}
        grains = grain_set(sounds, audio.rack.sample_rate, seed=self.context.seed_for("grains"))
        self.slot = audio.table(params.table)
        needed = HOP * (params.grains + 1)
        if pool.capacity(self.slot) < needed:
            raise ValueError(f"table '{params.table}' holds {pool.capacity(self.slot)} frames; "
                             f"{params.grains} grains need {needed}")
        self.learner = GrainVae(grains, VaeConfig(batch=params.batch, beta=params.beta,
                                                  learning_rate=params.learning_rate,
                                                  live_share=params.live_share))
        # Live, training splits the CPUs (engine.training_cores): the decoder's threads (numpy, at
        # normal priority) go to the training half with it, ahead of XLA's idle pool there, so the
        # show's half draws alone. Measured, 8 s runs on 2 CPUs, training/not frame p99 at the
        # median of 7 rounds: 6.7 against 5.3 ms (1.26x; the benchmark's 12-s rounds: 1.40x), at
        # 3.1 steps/s; with the CPUs shared, 8.7 against 5.2 ms (1.67x, 4 rounds) at 5.9 steps/s;
        # OSC move p99 alike (15-23 ms, 17-27 ms).
        self.trainer = self.context.trainer(self.learner, "vae", steps_per_tick=params.render_steps_per_tick,
                                            duty=params.train_duty, process=params.train_process)
        self.trainer.load()
        if params.checkpoint:
            self.trainer.restore(self.context.path(params.checkpoint))
        rng = np.random.default_rng(self.context.seed_for("pca"))
        pick = np.sort(rng.choice(len(grains.train), min(PCA_GRAINS, len(grains.train)), replace=False))
        self.pca_grains = grains.train[pick]
        self.pca_sources = grains.train_source[pick]
        self.noise = rng.standard_normal((params.grains, LATENT)).astype(np.float32)
        self.noise[0] = 0.0  # the first grain is the point itself
        # A periodic Hann window: grains overlap-added at hop 256 sum to a constant level.
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(GRAIN) / GRAIN)).astype(np.float32)
        self._encode = jax.jit(GrainVae.encode_means)
        self._host = None
        self._pool: ThreadPoolExecutor | None = None  # live: decodes a table's chunks side by side
        self._map = map
        state = self.trainer.latest.state
        self.basis = self.analyse(state.params, state.stats)  # compiles the encoder
        self.compose(state.params, state.stats, np.zeros(LATENT, np.float32), 0, self.basis)
        self.worker: _Worker | None = None
        self.analyser: _Worker | None = None
        # Live sound: the decoder thread writes each table itself the moment it is decoded, and an
        # OSC move reaches it from the listener's thread: a move does not wait for a tick.
        self.direct = not self.context.paced and self.context.audio.writes_now
        if self.direct and self.context.osc_now is not None:
            for address in LATENT_ADDRESSES:
                self.context.osc_now(address, self._latent_now)
        self.picture = None
        if self.context.gl is not None:
            from scenes.granolar.picture import Picture

            self.picture = Picture(self.context, len(params.sources))
        self._reset()

    def _reset(self) -> None:
        self.osc_point: np.ndarray | None = None
        self.dropped = 0
        self.requests = 0
        self.express = 0  # decodes asked for by OSC moves at once (live)
        self.requested_point: np.ndarray | None = None
        self.stale = False  # new axes since the last decode: decode again
        self.analysed_at = 0.0
        self.asked = None  # live in a training process: the encoding asked of it (a future)
        self.shown: Decoded | None = None
        self.ready: Decoded | None = None
        self.losses: list[tuple[int, float, float]] = []  # (steps, reconstruction, kl)
        self.time = 0.0
        self.listened_at = 0.0
        self.heard = 0  # grains fed to the model from the show's sound
        self.table_writes: deque[tuple[float, np.ndarray, bool]] = deque(maxlen=4096)

    # The point ------------------------------------------------------------------------------------
    def point(self) -> np.ndarray:
        """The latent point in principal coordinates: OSC's, once it sent one, else the knobs'."""
        if self.osc_point is not None:
            return self.osc_point
        return np.array([getattr(self.params, f"z{k}") for k in range(LATENT)], np.float32)

    def on_event(self, event) -> bool:
        if not isinstance(event, OscMessage) or event.address not in LATENT_ADDRESSES:
            return False
        point = _latent(event.args)
        if point is None:
            self.dropped += 1
            self.context.log.warning("OSC %s: expected %d finite numbers, got %r (dropped)",
                                     event.address, LATENT, event.args)
            return True
        self.osc_point = point
        return True

    def _latent_now(self, message: OscMessage) -> None:
        """On the OSC listener's thread, live: decode a move at once (the tick takes the same
        message, sets the point and finds it requested already)."""
        worker = self.worker
        point = _latent(message.args)
        if worker is None or point is None:
            return
        state = self.trainer.latest.state
        self.requested_point = point
        self.express += 1  # only this thread counts them
        worker.request((state.params, state.stats, point, -1, self.basis, True))

    # Decoding -------------------------------------------------------------------------------------
    def analyse(self, params, stats) -> tuple[np.ndarray, ...]:
        """The principal axes of the encoded training grains under the model ``params``: their
        means, centre, axes (columns, the widest first), deviations along them, and every grain's
        place in the first two. About 75 ms for 256 grains on two idle cores: done when the model
        has learned (every ``decode_every`` s), never for a move of the point."""
        return self.axes(self._encode(params, stats, self.pca_grains))

    @staticmethod
    def axes(means) -> tuple[np.ndarray, ...]:
        """:meth:`analyse`'s figures from the encoded grains' ``means``."""
        means = np.asarray(means, np.float64)
        means = np.where(np.isfinite(means), means, 0.0)
        centre = means.mean(axis=0)
        values, vectors = np.linalg.eigh(np.cov((means - centre).T) + 1e-9 * np.eye(LATENT))
        order = np.argsort(values)[::-1]
        deviations, axes = np.sqrt(np.maximum(values[order], 1e-12)), vectors[:, order]
        projected = (means - centre) @ axes[:, :2] / deviations[:2]
        return means, centre, axes, deviations, projected

    def _on_host(self, params, stats) -> tuple:
        """The decoder's weights as numpy multiplies by them (once per model state)."""
        cached = self._host
        if cached is None or cached[0] is not params or cached[1] is not stats:
            cached = (params, stats, prepare_decoder({k: np.asarray(v) for k, v in params.items()},
                                                     {k: np.asarray(v) for k, v in stats.items()}))
            self._host = cached
        return cached[2]

    def compose(self, params, stats, coordinates: np.ndarray, request: int, basis,
                express: bool = False) -> Decoded:
        """Decode grains around ``coordinates`` (principal coordinates of ``basis``) with the
        model's ``params``: the table and what the picture shows (about 6 ms for 32 grains, in
        numpy: never behind a training step in XLA's pool). ``express``: only :data:`EXPRESS` of
        them (the first ones around the point; along a trajectory, evenly spaced), each repeated
        over the slots it stands for."""
        means, centre, axes, deviations, projected = basis
        latent = centre + axes @ (deviations * coordinates)
        trajectory = self.params.mode == "trajectory"
        if trajectory:  # from the point's mirror image, through the centre, to it
            steps = np.linspace(-1.0, 1.0, len(self.noise))[:, None] * coordinates
            points = centre + (steps * deviations) @ axes.T
        else:
            points = latent + (self.noise * self.params.spread * deviations) @ axes.T
        slots = len(points)
        if express and slots > EXPRESS:
            if trajectory:
                points = points[np.round(np.linspace(0, slots - 1, EXPRESS)).astype(int)]
                spread = np.round(np.linspace(0, EXPRESS - 1, slots)).astype(int)  # each slot: its nearest
            else:
                points, spread = points[:EXPRESS], np.arange(slots) % EXPRESS
        else:
            express, spread = False, None
        decoded = decode_numpy(None, points.astype(np.float32), prepared=self._on_host(params, stats),
                               map_chunks=self._map)
        decoded = np.clip(np.nan_to_num(decoded, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
        if spread is not None:
            decoded = decoded[spread]
        table = np.zeros(HOP * (len(decoded) + 1), np.float32)
        for index, grain in enumerate(decoded):
            table[index * HOP:index * HOP + GRAIN] += grain * self.window
        nearest = int(np.argmin(np.sum((means - latent) ** 2, axis=1)))
        return Decoded(table, coordinates[:2].copy(), projected, decoded[0], self.pca_grains[nearest],
                       request, np.array(coordinates, np.float32), express=express)

    def _request(self, point: np.ndarray) -> None:
        state = self.trainer.seen.state
        self.requests += 1
        self.requested_point, self.stale = point, False
        job = (state.params, state.stats, point, self.requests, self.basis)
        if self.worker is None:
            self.ready = self.compose(*job)
        else:
            self.worker.request(job)

    def _analyse(self) -> None:
        """While learning, every ``decode_every`` s: the principal axes again for the model as
        it is now (beside the show live, on a thread of their own so a move never waits for
        them; in the tick in renders), then a decode with them."""
        elsewhere = self.trainer.process and not self.trainer.paced
        if elsewhere:  # live in a training process: encoded there, after a call (the frames stop it)
            if self.asked is not None and self.asked.done():
                asked, self.asked = self.asked, None
                if asked.exception() is None:
                    self.basis, self.stale = self.axes(asked.result()), True
            if self.params.train and self.time - self.analysed_at >= self.params.decode_every \
                    and self.asked is None:
                self.analysed_at = self.time
                self.asked = self.trainer.ask("encoded_means", self.pca_grains)
            return
        if self.params.train and self.time - self.analysed_at >= self.params.decode_every \
                and (self.analyser is None or not self.analyser.busy):
            self.analysed_at = self.time
            state = self.trainer.seen.state
            if self.analyser is None:
                self.basis, self.stale = self.analyse(state.params, state.stats), True
            else:
                self.analyser.request((state.params, state.stats))
        if self.analyser is not None:
            basis = self.analyser.take()
            if basis is not None:
                self.basis, self.stale = basis, True

    # The show -------------------------------------------------------------------------------------
    def enter(self) -> None:
        self._reset()
        if not self.context.paced:
            write = (lambda table: self.context.audio.write_table_now(self.params.table, table)) \
                if self.direct else None
            # Live, a decode's chunks of grains side by side on the cores (bit for bit as in a render).
            spread = min(-(-self.params.grains // DECODE_CHUNK), os.cpu_count() or 1)
            if spread > 1:
                self._pool = ThreadPoolExecutor(spread, thread_name_prefix="vae decode",
                                                initializer=_beside_training)
                self._map = self._pool.map
            self.worker = _Worker(self.compose, "vae decoder", write)
            if not self.trainer.process:  # a training process encodes the axes itself
                self.analyser = _Worker(self.analyse, "vae axes")
        if self.params.train:
            self.trainer.start()
        self._request(self.point())

    def exit(self) -> None:
        self.trainer.stop()
        self.asked = None
        for worker in (self.worker, self.analyser):
            if worker is not None:
                worker.close()
        if self.worker is not None:
            self.table_writes.extend(self.worker.written)
            self.worker.written.clear()
        self.worker = self.analyser = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool, self._map = None, map

    def writes(self) -> list[tuple[float, np.ndarray, bool]]:
        """When each table went to the audio side (wall clock), its point and whether it was a
        move's express table, oldest first: a measure, never played from (bench/granolar.py times
        a move from its OSC message)."""
        live = list(self.worker.written) if self.worker is not None else []
        return sorted(list(self.table_writes) + live, key=lambda write: write[0])

    def _listen(self) -> None:
        """Every ``listen_every`` seconds, that much of the show's input or mix, cut into grains
        (the quiet ones dropped), fed to the model."""
        if self.params.listen == "off" or not self.params.train:
            return
        if self.time - self.listened_at < self.params.listen_every - 1e-9:
            return
        self.listened_at = self.time
        sound = self.context.audio.listen(self.params.listen_every, self.params.listen)
        grains = cut_grains(sound)[:FEED]
        if not len(grains):
            return
        data = np.zeros((FEED, GRAIN), np.float32)
        data[:len(grains)] = np.clip(np.nan_to_num(grains), -1.0, 1.0)
        if self.trainer.feed({"grains": data, "count": np.int32(len(grains))}):
            self.heard += len(grains)

    def tick(self, dt: float) -> None:
        self.time += dt
        self.trainer.duty = self.params.train_duty  # moved live by a controller or OSC
        self._listen()
        self._analyse()
        point = self.point()
        moved = self.requested_point is None or not np.array_equal(point, self.requested_point)
        if (moved or self.stale) and (self.worker is None or not self.worker.busy):
            self._request(point)
        if self.worker is not None:
            self.ready = self.worker.take() or self.ready
        if self.ready is not None and self.ready.written_at:  # written by the decoder already
            self.shown, self.ready = self.ready, None
        elif self.ready is not None and self.context.audio.write_table(self.params.table, self.ready.table):
            self.shown, self.ready = self.ready, None
            self.table_writes.append((time.perf_counter(), self.shown.point, self.shown.express))
        summary = self.trainer.seen.summary
        steps = int(self.trainer.seen.steps)
        if not self.losses or self.losses[-1][0] != steps:
            self.losses.append((steps, float(summary["reconstruction"]), float(summary["kl"])))
            del self.losses[:-600]

    def draw(self, alpha: float) -> None:
        if self.picture is not None:
            self.picture.draw(self)

    def status(self) -> dict[str, Any]:
        summary = self.trainer.seen.summary
        return {"steps": int(self.trainer.seen.steps), "loss": float(summary["loss"]),
                "reconstruction": float(summary["reconstruction"]), "kl": float(summary["kl"]),
                "held_out_error": float(summary["held_out_error"]), "decodes": self.requests + self.express,
                "dropped": self.dropped, "heard": self.heard,
                "z0": float(self.point()[0]), "z1": float(self.point()[1])}
