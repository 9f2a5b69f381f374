"""Benchmark: the grain VAE trained and played beside a live show (issue 21).

**Live.** The "learn" cue of setlists/granolar.toml plays live: ``RealTime``, 60 Hz ticks and
frames, 1280x720 with the scene's picture on the headless EGL display, its sound from a
``LiveAudio`` audio process on a private JACK server (dummy driver, 48 kHz, 256 frames a period)
and OSC in through the show's ``OscInput``. A python-osc client in this process sends ``/latent``
with a fresh random point every 0.2-0.4 s. Three kinds of run, back to back in rounds, their order
turning: the model training (in its training process, which the show stops during each frame's
work: ``train_process``, the default), training at ``train_duty = 0.5`` and not
(``train = false``). Per run: frame
time p99 (the metrics' ``frame_ms``), frames a second, training steps a second, decodes and
decoded grains a second, and for each OSC move the wall time from the client's send to the first
table decoded at that point written to the audio side (the move's express table: 8 grains
repeated; the audio process plays it from its next block: bench/table_latency.py measures that
part), and to its full table. Figures: medians over the rounds; the frame ratio is
the median of each round's p99 with training / without.

**Step time.** One training step (the negative ELBO's value and gradient, an adam update) at
batch 16, compiled for the polyphase network and for the straightforward one (``lax`` strided and
transposed convolutions), timed interleaved.

``SHOWRUNNER_GRANOLAR_SECONDS`` (default 12) is the show time of a run,
``SHOWRUNNER_GRANOLAR_ROUNDS`` (default 3) the number of rounds.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.jack_server import jack_server
from bench.result import BenchResult, Figure
from bench.settings import number

ROOT = Path(__file__).resolve().parents[1]
SETLIST = ROOT / "setlists" / "granolar.toml"
SECONDS_VARIABLE = "SHOWRUNNER_GRANOLAR_SECONDS"
ROUNDS_VARIABLE = "SHOWRUNNER_GRANOLAR_ROUNDS"
DUTY = 0.5  # the third kind of run: training live at this train_duty
HALF = f"training at duty {DUTY:g}"
KINDS = ("not training", "training", HALF)
GOAL_FRAME_RATIO = 1.2
GOAL_MOVE_MS = 20.0
MOVE_EVERY = (0.2, 0.4)
STEP_TRIALS = 20


@dataclass
class LiveRun:
    kind: str
    frame_p99: float  # ms
    fps: float
    steps_per_second: float
    decodes_per_second: float
    grains_per_second: float
    move_ms: list[float]  # OSC send to table written (the express one), each move that was played
    full_ms: list[float]  # OSC send to the move's full table written, each move that got one
    unplayed: int  # moves replaced by the next before their table was written
    underruns: int


def _setlist(folder: Path, train: bool, duty: float = 1.0) -> Path:
    header, *cues = SETLIST.read_text().split("\n[[cues]]\n")
    [learn] = [cue for cue in cues if cue.startswith('id = "learn"')]
    text = "\n[[cues]]\n".join([header, learn.replace(
        "spread = 0.4 }", f"spread = 0.4, train = {str(train).lower()}, train_duty = {duty} }}")])
    path = folder / "granolar.toml"
    path.write_text(text.replace('"../assets/', f'"{ROOT}/assets/'))
    return path


def _live_run(kind: str, seconds: float, folder: Path, seed: int) -> LiveRun:
    from pythonosc.udp_client import SimpleUDPClient

    from engine.audio.live import LiveAudio
    from engine.audio.sound_settings import build_sound
    from engine.clock import RealTime
    from engine.display import open_display
    from engine.osc import OscInput
    from engine.setlist import load_setlist
    from engine.show import Show, ShowOptions

    path = _setlist(folder, train=kind != "not training", duty=DUTY if kind == HALF else 1.0)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    metrics = folder / f"{kind}.jsonl"
    clock = RealTime()
    display = open_display((1280, 720), headless=True)
    audio = LiveAudio(rack, pool=pool)
    osc_in = OscInput("127.0.0.1", 0, clock.now)
    sent: list[tuple[float, np.ndarray]] = []
    stop = threading.Event()

    def send() -> None:
        rng = random.Random(seed)
        client = SimpleUDPClient("127.0.0.1", osc_in.port)
        while not stop.wait(rng.uniform(*MOVE_EVERY)):
            point = np.float32([rng.uniform(-2, 2) for _ in range(16)])
            sent.append((time.perf_counter(), point))
            client.send_message("/latent", [float(v) for v in point])

    try:
        audio.start()
        if not audio.wait_running(15.0):
            raise RuntimeError("the audio process did not start")
        osc_in.start()
        show = Show(setlist, ShowOptions(duration=seconds, fps=60, metrics=metrics), clock, display,
                    audio=audio, osc_in=osc_in)
        failures = show.load()
        if failures:
            raise RuntimeError(failures[0])
        scene = show.scenes[0]
        scene.trainer.join(10)  # the warm-up's call ends before the show starts
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            show.run()
        finally:
            stop.set()
            sender.join()
        scene.trainer.join(10)
        if scene.trainer.error is not None:
            raise RuntimeError(f"the trainer failed: {scene.trainer.error}")
        underruns = int(audio.health().get("xruns", 0))
    finally:
        osc_in.close()
        audio.close()
        display.close()
        pool.close()
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    frames = [r["frame_ms"] for r in records if "frame_ms" in r]
    span = records[-1]["time"] - records[0]["time"]
    status = [r for r in records if "steps" in r]
    steps = (status[-1]["steps"] - status[0]["steps"]) / span
    decodes = (status[-1]["decodes"] - status[0]["decodes"]) / span
    writes = scene.writes()
    moves, full, unplayed = [], [], 0
    for index, (at, point) in enumerate(sent):
        until = sent[index + 1][0] if index + 1 < len(sent) else float("inf")
        played = [(t, express) for t, p, express in writes if at <= t < until and np.array_equal(p, point)]
        if played:
            moves.append(1000 * (played[0][0] - at))
            whole = [t for t, express in played if not express]
            if whole:
                full.append(1000 * (whole[0] - at))
        else:
            unplayed += 1
    return LiveRun(kind, float(np.percentile(frames, 99)), len(frames) / span, steps, decodes,
                   decodes * scene.params.grains, moves, full, unplayed, underruns)


def _step_times() -> tuple[float, float]:
    """Median ms of a training step, polyphase and straightforward, batch 16."""
    import jax
    import optax

    from scenes.granolar import vae

    params = vae.init_params(jax.random.PRNGKey(0))
    optimizer = optax.adam(2e-3)
    grains = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (16, vae.GRAIN))
    key = jax.random.PRNGKey(2)

    def stepper(encoder, decoder):
        def step(params, opt_state):
            grad = jax.grad(lambda p: vae.negative_elbo(p, grains, key, 0.5, encoder, decoder)[0])(params)
            updates, opt_state = optimizer.update(grad, opt_state, params)
            return optax.apply_updates(params, updates), opt_state
        return jax.jit(step)

    kinds = {"polyphase": stepper(vae.encode, vae.decode), "direct": stepper(vae.encode_direct, vae.decode_direct)}
    states = {name: (params, optimizer.init(params)) for name in kinds}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for name, step in kinds.items():
        jax.block_until_ready(step(*states[name]))  # compile
    for _ in range(STEP_TRIALS):
        for name, step in kinds.items():
            started = time.perf_counter()
            states[name] = jax.block_until_ready(step(*states[name]))
            times[name].append(1000 * (time.perf_counter() - started))
    return float(np.median(times["polyphase"])), float(np.median(times["direct"]))


def run() -> BenchResult:
    seconds = number(SECONDS_VARIABLE, 12.0)
    rounds = int(number(ROUNDS_VARIABLE, 3.0))
    runs: list[dict[str, LiveRun]] = []
    with tempfile.TemporaryDirectory(prefix="bench-granolar-") as name, jack_server(48000, 256):
        for index in range(rounds):
            order = KINDS if index % 2 == 0 else KINDS[::-1]
            runs.append({kind: _live_run(kind, seconds, Path(name), seed=index) for kind in order})
    polyphase, direct = _step_times()

    def median(kind: str, field: str) -> float:
        return float(np.median([getattr(one[kind], field) for one in runs]))

    result = BenchResult(
        key="granolar", title="The grain VAE trained and played beside a live show",
        method=(f"The \"learn\" cue of setlists/granolar.toml live: `RealTime`, 60 Hz ticks and frames, "
                "1280x720 with the scene's picture on the headless EGL display, sound from the audio "
                "process on a private JACK server (dummy driver, 48 kHz, 256 frames), OSC in through the "
                "show's listener; a python-osc client sends `/latent` with a random point every "
                f"{MOVE_EVERY[0]}-{MOVE_EVERY[1]} s. {rounds} rounds of {seconds:g} s, training (in the scene's "
                "training process, stopped during each frame's work: `train_process`, the default), training "
                f"at `train_duty = {DUTY:g}` and not (`train = false`), the order turning (`{SECONDS_VARIABLE}`, `{ROUNDS_VARIABLE}`). A move's "
                "time runs from the client's send to the first table decoded at that point written to "
                "the audio side (the decoder's thread writes it: live, a move is first decoded as 8 "
                "grains repeated over the table, then in full; both are timed); the audio process plays a written table from its next block (one period more, "
                "`python -m bench table`). Medians over rounds; the frame ratio is the median of each "
                "round's p99 with training / without. Step time: one compiled step (ELBO value and "
                f"gradient, adam) at batch 16, polyphase and straightforward convolutions, {STEP_TRIALS} "
                "interleaved trials each, medians."),
        goal=(f"Goals (issue 21): frame time p99 with training at most {GOAL_FRAME_RATIO:g}x without; a "
              f"latent move sounds within {GOAL_MOVE_MS:g} ms p99."))
    ratio = float(np.median([one["training"].frame_p99 / one["not training"].frame_p99 for one in runs]))
    result.figures += [
        Figure("frame time p99, not training", median("not training", "frame_p99"), "ms"),
        Figure("frame time p99, training", median("training", "frame_p99"), "ms"),
        Figure("frame time p99, training / not", ratio, "x", f"<= {GOAL_FRAME_RATIO:g}x",
               bool(ratio <= GOAL_FRAME_RATIO)),
        Figure(f"frame time p99, {HALF} / not",
               float(np.median([one[HALF].frame_p99 / one["not training"].frame_p99 for one in runs])), "x"),
        Figure(f"training steps a second, {HALF}", median(HALF, "steps_per_second"), "/s"),
        Figure("frames a second, training", median("training", "fps"), "fps"),
        Figure("training steps a second beside the show", median("training", "steps_per_second"), "/s"),
        Figure("grains decoded a second, training", median("training", "grains_per_second"), "/s"),
        Figure("grains decoded a second, not training", median("not training", "grains_per_second"), "/s"),
    ]
    for kind in KINDS:
        moves = [ms for one in runs for ms in one[kind].move_ms]
        p99 = float(np.percentile(moves, 99))
        full = [ms for one in runs for ms in one[kind].full_ms]
        result.figures += [
            Figure(f"OSC move to table written, median, {kind}", float(np.median(moves)), "ms"),
            Figure(f"OSC move to table written, p99, {kind}", p99, "ms", f"<= {GOAL_MOVE_MS:g} ms",
                   bool(p99 <= GOAL_MOVE_MS)),
            Figure(f"OSC move to its full table written, p99, {kind}", float(np.percentile(full, 99)), "ms")]
    result.figures += [Figure("training step, polyphase (batch 16)", polyphase, "ms"),
                       Figure("training step, straightforward convolutions", direct, "ms"),
                       Figure("straightforward / polyphase step time", direct / polyphase, "x")]
    for number_, one in enumerate(runs, 1):
        result.notes.append(f"Round {number_}: " + "; ".join(
            f"{r.kind}: p99 {r.frame_p99:.2f} ms, {r.fps:.1f} fps, {r.steps_per_second:.2f} steps/s, "
            f"{r.decodes_per_second:.2f} decodes/s, {len(r.move_ms)} moves played, {r.unplayed} replaced "
            f"before played, {r.underruns} underruns" for r in one.values()) + ".")
    load_one, load_five, _ = os.getloadavg()
    result.notes.append(f"Load average (1 / 5 min) at the end: {load_one:.2f} / {load_five:.2f}.")
    return result
