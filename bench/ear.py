"""Benchmark: the artificial ear listening and dreaming beside a live show (issue 22).

**Live.** The "silence" cue of setlists/ear.toml plays live: ``RealTime``, 60 Hz ticks and frames,
1280x720 with the scene's picture on the headless EGL display, its sound from a ``LiveAudio``
audio process on a private JACK server (dummy driver, 48 kHz, 256 frames a period). Three kinds
of run, back to back in rounds, their order turning: the ear at work (listening 30 times a second,
dreaming 4-s loops of 40 steps), the same learning from what it hears (``train = true``), and idle
(``listen = "off"``, ``dream = false``: the same picture of a graph that hears nothing). Per run:
frame time p99, listens a second, loops dreamed and how long each took, training steps a second.
Figures: medians over the rounds; a frame ratio is the median of each round's p99 over idle's.

**Parts.** Medians of interleaved trials: a listen as the scene does it (the show's sound of a
30th of a second resampled, its new scaleogram frames and the layer steps they complete, numpy:
scenes/ear/listen.py) and as the whole 4 s in one compiled jax call (the scaleogram of 4 s and the
forward pass, the peer), an input-optimisation
step of a 4-s loop with the scaleogram in polyphase form and as a strided convolution (the peer),
a layout iteration at 3,328 neurons, and a training step of 8 clips.

``SHOWRUNNER_EAR_SECONDS`` (default 12) is the show time of a run, ``SHOWRUNNER_EAR_ROUNDS``
(default 3) the number of rounds.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.jack_server import jack_server
from bench.result import BenchResult, Figure
from bench.settings import number

ROOT = Path(__file__).resolve().parents[1]
SETLIST = ROOT / "setlists" / "ear.toml"
CHECKPOINT = ROOT / "build" / "ear.ckpt"
SECONDS_VARIABLE = "SHOWRUNNER_EAR_SECONDS"
ROUNDS_VARIABLE = "SHOWRUNNER_EAR_ROUNDS"
KINDS = ("idle", "at work", "learning")
GOAL_FRAME_RATIO = 1.2
TRIALS = 20


@dataclass
class LiveRun:
    kind: str
    frame_p99: float  # ms
    fps: float
    listens_per_second: float
    loops: int
    loop_seconds: list[float]  # time to dream each loop
    steps_per_second: float  # training on stage ("learning")
    underruns: int


def _setlist(folder: Path, kind: str) -> Path:
    header, *cues = SETLIST.read_text().split("\n[[cues]]\n")
    [cue] = [c for c in cues if c.startswith('id = "silence"')]
    if kind == "idle":
        cue = cue.replace('start = "silence"', 'start = "silence", listen = "off", dream = false')
    elif kind == "learning":
        cue = cue.replace('start = "silence"', 'start = "silence", train = true')
    path = folder / "ear.toml"
    path.write_text("\n[[cues]]\n".join([header, cue]).replace('"../assets/', f'"{ROOT}/assets/')
                    .replace('"../build/', f'"{ROOT}/build/'))
    return path


def _live_run(kind: str, seconds: float, folder: Path) -> LiveRun:
    from engine.audio.live import LiveAudio
    from engine.audio.sound_settings import build_sound
    from engine.clock import RealTime
    from engine.display import open_display
    from engine.setlist import load_setlist
    from engine.show import Show, ShowOptions

    path = _setlist(folder, kind)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    metrics = folder / f"{kind}.jsonl"
    display = open_display((1280, 720), headless=True)
    audio = LiveAudio(rack, pool=pool)
    try:
        audio.start()
        if not audio.wait_running(15.0):
            raise RuntimeError("the audio process did not start")
        show = Show(setlist, ShowOptions(duration=seconds, fps=60, metrics=metrics), RealTime(), display,
                    audio=audio)
        failures = show.load()
        if failures:
            raise RuntimeError(failures[0])
        scene = show.scenes[0]
        show.run()
        underruns = int(audio.health().get("xruns", 0))
    finally:
        audio.close()
        display.close()
        pool.close()
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    frames = [r["frame_ms"] for r in records if "frame_ms" in r]
    span = records[-1]["time"] - records[0]["time"]
    listens = (records[-1]["listens"] - records[0]["listens"]) / span
    learned = [r for r in records if "steps" in r]
    steps = (learned[-1]["steps"] - learned[0]["steps"]) / span if learned else 0.0
    return LiveRun(kind, float(np.percentile(frames, 99)), len(frames) / span, listens,
                   scene.loops_played, [end - begin for begin, end in scene.loop_times], steps, underruns)


def _timed(functions: dict, trials: int = TRIALS) -> dict[str, float]:
    """Median ms of each zero-argument function (each compiled first), interleaved."""
    import jax

    for function in functions.values():
        jax.block_until_ready(function())
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(trials):
        for name, function in functions.items():
            started = time.perf_counter()
            jax.block_until_ready(function())
            times[name].append(1000 * (time.perf_counter() - started))
    return {name: float(np.median(values)) for name, values in times.items()}


def _parts() -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    from scenes.ear import dream, layout, network
    from scenes.ear.data import spectra_of
    from scenes.ear.learner import EarCpc, load_ear
    from scenes.ear.player import Ear

    state = load_ear(CHECKPOINT)
    model = (state.params, state.mean, state.var)
    clip = jnp.asarray(0.1 * np.random.default_rng(0).standard_normal(network.CLIP).astype(np.float32))
    hear = jax.jit(Ear.hear)
    target, reg = dream.Target(), dream.Regularisers()
    weights = target.weights(network.CLIP_FRAMES)
    key = jax.random.PRNGKey(0)
    poly = jax.jit(lambda x: dream.dream_step(*model, x, key, target.layer, weights, reg.vector()))

    def direct_step(x):  # the same step with the scaleogram as a strided convolution
        original = network.scaleogram
        network.scaleogram = network.scaleogram_direct
        try:
            return dream.dream_step(*model, x, key, target.layer, weights, reg.vector())
        finally:
            network.scaleogram = original

    direct = jax.jit(direct_step)
    graph = layout.neuron_graph()
    q = jnp.asarray(layout.charges(graph, {k: np.asarray(v) for k, v in state.var.items()}))
    positions = jnp.asarray(np.random.default_rng(1).normal(0, 10, (len(graph), 2)).astype(np.float32))
    edges = jnp.asarray(graph.edges)
    velocity = jnp.zeros_like(positions)
    sound = {"noise": (0.1 * np.random.default_rng(2).standard_normal(network.RATE * 14)).astype(np.float32)}
    learner = EarCpc(spectra_of(sound))
    train_state = learner.init(np.uint32(0))
    jit_step = jax.jit(learner.step)
    from scenes.ear.listen import Listener

    show = (0.1 * np.random.default_rng(3).standard_normal(48000 * 30)).astype(np.float32)
    fed = {"end": 0, "listener": Listener(48000)}

    def listen_new():  # the scene's listen: what came in a 30th of a second (1,600 samples at 48 kHz)
        if fed["end"] + 1600 > len(show):  # the sound used up: a new listener from its start
            fed["end"], fed["listener"] = 0, Listener(48000)
        fed["end"] += 1600
        end, listener = fed["end"], fed["listener"]
        return listener.hear(model, show[max(0, end - listener.needed(end)):end], end)

    times = _timed({
        "listen": lambda: hear(*model, clip),
        "listen, new sound": listen_new,
        "dream step, polyphase": lambda: poly(clip),
        "dream step, strided scaleogram": lambda: direct(clip),
        "layout, 10 iterations": lambda: layout._iterate(positions, velocity, q, edges, 0.08, 0.05, 10),
        "training step": lambda: jit_step(train_state),
    })
    times["layout iteration"] = times.pop("layout, 10 iterations") / 10
    return times


def run() -> BenchResult:
    seconds = number(SECONDS_VARIABLE, 12.0)
    rounds = int(number(ROUNDS_VARIABLE, 3.0))
    if not CHECKPOINT.exists():
        raise RuntimeError(f"{CHECKPOINT} is missing: `make setup` trains it")
    runs: list[dict[str, LiveRun]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ear-") as name, jack_server(48000, 256):
        for index in range(rounds):
            order = KINDS if index % 2 == 0 else KINDS[::-1]
            runs.append({kind: _live_run(kind, seconds, Path(name)) for kind in order})
    parts = _parts()

    def median(kind: str, field: str) -> float:
        return float(np.median([getattr(one[kind], field) for one in runs]))

    loop = 172 * 512 / 22050
    dreamt = [s for one in runs for s in one["at work"].loop_seconds]
    result = BenchResult(
        key="ear", title="The artificial ear listening and dreaming beside a live show",
        method=(f"The \"silence\" cue of setlists/ear.toml live: `RealTime`, 60 Hz ticks and frames, 1280x720 "
                "with the scene's picture on the headless EGL display, sound from the audio process on a "
                "private JACK server (dummy driver, 48 kHz, 256 frames). The ear at work (listening 30 times "
                "a second, dreaming 4-s loops of 40 steps on its own threads), the same learning on stage "
                "(`train = true`: from the first 4 s heard on) and idle (`listen = \"off\"`, "
                f"`dream = false`), {rounds} rounds of {seconds:g} s, the order turning (`{SECONDS_VARIABLE}`, "
                f"`{ROUNDS_VARIABLE}`); medians over rounds; the frame ratio is the median of each round's "
                f"p99 at work / idle. Parts: medians of {TRIALS} interleaved trials of each call "
                "(build/ear.ckpt; a listen of the newest 30th of a second in numpy, as the scene listens, "
                "against the whole 4 s in one jax call; a dream step with the scaleogram in polyphase form and as one strided "
                "convolution, the peer)."),
        goal=(f"Goals (issue 22): frame time p99 with the ear at work at most {GOAL_FRAME_RATIO:g}x idle; a "
              "new loop ready before the one playing ends."))
    ratio = float(np.median([one["at work"].frame_p99 / one["idle"].frame_p99 for one in runs]))
    learning_ratio = float(np.median([one["learning"].frame_p99 / one["idle"].frame_p99 for one in runs]))
    slowest = max(dreamt) if dreamt else float("nan")
    result.figures += [
        Figure("frame time p99, idle", median("idle", "frame_p99"), "ms"),
        Figure("frame time p99, at work", median("at work", "frame_p99"), "ms"),
        Figure("frame time p99, at work / idle", ratio, "x", f"<= {GOAL_FRAME_RATIO:g}x",
               bool(ratio <= GOAL_FRAME_RATIO)),
        Figure("frame time p99, at work and learning on stage", median("learning", "frame_p99"), "ms"),
        Figure("frame time p99, learning / idle", learning_ratio, "x", f"<= {GOAL_FRAME_RATIO:g}x",
               bool(learning_ratio <= GOAL_FRAME_RATIO)),
        Figure("training steps a second beside the show", median("learning", "steps_per_second"), "/s"),
        Figure("listens a second, at work", median("at work", "listens_per_second"), "/s", ">= 30",
               bool(median("at work", "listens_per_second") >= 29.0)),
        Figure("slowest loop dreamed (40 steps), of its 4.0 s", slowest, "s", f"< {loop:.2f} s",
               bool(slowest < loop)),
        Figure("dream steps a loop's length allows, beside the show", 40 * loop / float(np.median(dreamt)), "steps"),
        Figure("listen: the newest 1/30 s through the ear, numpy (the scene's)", parts["listen, new sound"], "ms"),
        Figure("listen: the whole 4 s through the ear, jax (the peer)", parts["listen"], "ms"),
        Figure("whole 4 s in jax / newest in numpy", parts["listen"] / parts["listen, new sound"], "x"),
        Figure("dream step, polyphase scaleogram", parts["dream step, polyphase"], "ms"),
        Figure("dream step, strided-convolution scaleogram", parts["dream step, strided scaleogram"], "ms"),
        Figure("strided / polyphase dream step", parts["dream step, strided scaleogram"] / parts["dream step, polyphase"], "x"),
        Figure("layout iteration, 3,328 neurons", parts["layout iteration"], "ms"),
        Figure("training step, 8 clips of 4 s", parts["training step"], "ms"),
    ]
    for number_, one in enumerate(runs, 1):
        result.notes.append(f"Round {number_}: " + "; ".join(
            f"{r.kind}: p99 {r.frame_p99:.2f} ms, {r.fps:.1f} fps, {r.listens_per_second:.1f} listens/s, "
            f"{r.loops} loops played, {r.underruns} underruns" for r in one.values()) + ".")
    load_one, load_five, _ = os.getloadavg()
    result.notes.append(f"Load average (1 / 5 min) at the end: {load_one:.2f} / {load_five:.2f}.")
    return result
