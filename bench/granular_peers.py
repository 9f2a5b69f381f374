"""Benchmark: our audio process playing a grain stream against pyo's ``Particle`` and scsynth's
``GrainBuf`` playing the same stream, side by side in one run, and the granulator's share of a
block at 1,000 simultaneous grains.

On one private JACK server (dummy driver, 256 frames per period) the three players of
:mod:`bench.grain_players` and a yardstick (:mod:`bench.fused_grains`: the same stream made in one
compiled call a block by a compiled PortAudio callback, as ours on this rack) run at once, each its own process. In turn, one
plays (200 or 1,000 grains per second) while the others are silent, and the CPU time of every
process over that window (and of a fifth that never plays: a PyAudio stream whose callback returns
silence, the floor of any process that plays through PyAudio)
(``/proc/PID/stat`` utime + stime, all threads) is read at both ends: the playing one's is its cost
for the stream, the silent ones' their fixed cost as JACK clients. The order of the players turns
each round, and a JACK client records whoever plays; a silent capture is an error, not a figure.

``SHOWRUNNER_GRANULAR_SECONDS`` (default 10) sets each window, ``SHOWRUNNER_GRANULAR_ROUNDS``
(default 3) the rounds. Run alone: ``python -m bench granular``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from statistics import median

import numpy as np
import soundfile

from bench import granulator_load
from bench.grain_players import (DURATION, GAIN, PERIOD, PITCH_JITTER, POSITION, POSITION_DEVIATION,
                                 SAMPLE_RATE, FloorPlayer, FusedPlayer, OurPlayer, PyoPlayer,
                                 ScsynthPlayer)
from bench.jack_recorder import JackRecorder
from bench.jack_server import JackUnavailable, jack_server, realtime_threads
from bench.result import BenchResult, Figure
from bench.scsynth_peer import _callback_share, _scsynth_version, cpu_seconds
from engine.audio.pool import load_audio_file

DENSITIES = (200.0, 1000.0)  # grains per second
SECONDS = float(os.environ.get("SHOWRUNNER_GRANULAR_SECONDS", "10"))  # measured per window
ROUNDS = int(os.environ.get("SHOWRUNNER_GRANULAR_ROUNDS", "3"))
SETTLE = 1.0  # seconds after a player starts before its window
RING_OUT = 0.3  # seconds after it stops, before the next one starts (its last grains end)
SILENCE = 0.01  # a capture whose peak stays under this (-40 dBFS) is not the player playing
GOAL_RATIO = 1.0  # ours / the better peer's, at each density
GOAL_SHARE = 25.0  # % of a block, at 1,000 simultaneous grains
TABLE = Path(__file__).resolve().parent.parent / "assets" / "audio" / "grains" / \
    "smstools_singing-female.wav"


class SwitchingRecorder(JackRecorder):
    """A recorder that listens to one player at a time: its watcher drops connections from ports
    that no longer match ``pattern`` before connecting those that do."""

    def listen_to(self, pattern: str, timeout: float = 5.0) -> None:
        self.pattern = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while not self._listening():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recorder found no output ports matching {pattern}")
            time.sleep(0.01)

    def _listening(self) -> bool:
        sources = [[c.name for c in self.client.get_all_connections(port)] for port in self.ins]
        return all(names and all(self.pattern.search(n) for n in names) for names in sources)

    def _connect_new(self) -> None:
        for port in self.ins:
            for source in self.client.get_all_connections(port):
                if not self.pattern.search(source.name):
                    self.client.disconnect(source, port)
        super()._connect_new()


def _window(players: list, playing, density: float,
            recorder: SwitchingRecorder) -> tuple[dict[str, float], float, dict]:
    """Share of one core (CPU seconds / wall seconds) of every player over SECONDS while
    ``playing`` plays ``density`` grains a second, the peak heard from it meanwhile, and what it
    says of itself at the window's end (:func:`_self_report`)."""
    recorder.listen_to(playing.ports)
    playing.play(density)
    try:
        time.sleep(SETTLE)
        mark = recorder.mark()
        before, started = {p.name: cpu_seconds(p.pid) for p in players}, time.monotonic()
        time.sleep(SECONDS)
        after, wall = {p.name: cpu_seconds(p.pid) for p in players}, time.monotonic() - started
        heard = recorder.since(mark)
        report = _self_report(playing)
    finally:
        playing.stop()
    time.sleep(RING_OUT)
    peak = float(np.abs(heard).max()) if len(heard) else 0.0
    return {name: (after[name] - before[name]) / wall for name in after}, peak, report


def _self_report(player) -> dict:
    """Our callback's own compute (share of one core, from its timing of each block), or
    scsynth's own /status; nothing from pyo."""
    if isinstance(player, OurPlayer):
        return {"callback": _callback_share(player.audio)}
    if isinstance(player, ScsynthPlayer):
        return player.status()
    return {}


def _measure(wav: Path, table: np.ndarray) -> dict:
    """Every round's shares, by density and player (playing) and by player (silent), the lowest
    peak heard from each player, what ours and scsynth said of themselves at the top density, our
    underruns and the JACK server's missed cycles."""
    names = ("ours", "pyo", "scsynth", "fused")
    playing = {density: {name: [] for name in names} for density in DENSITIES}
    silent = {name: [] for name in (*names, "floor")}
    peaks = {name: float("inf") for name in names}
    found = {"playing": playing, "silent": silent, "peaks": peaks, "reports": {}}
    with jack_server(SAMPLE_RATE, PERIOD, realtime="auto") as jack:
        found["jack"] = jack.detail if jack.realtime else f"not realtime: {jack.detail}"
        players: list = []
        # First in JACK's graph, never measured: the client the server wakes first paid about
        # twice what the others pay for the same callback (a silent PyAudio stream, 4 at once:
        # 1.4-1.7 % of a core first against 0.65-0.9 % after it), whoever it was.
        sentinel = FloorPlayer()
        recorder = None
        try:
            recorder = SwitchingRecorder(seconds=SECONDS + SETTLE + 5)
            players.append(OurPlayer(table))
            players.append(PyoPlayer(wav))
            players.append(ScsynthPlayer(wav))
            players.append(FusedPlayer(wav))  # the yardstick: one compiled call a block, no Python
            turns = list(players)
            players.append(FloorPlayer())  # read every window, never plays
            underruns = players[0].audio.health()["xruns"]
            time.sleep(SETTLE)  # every client's audio thread has run its first period
            found["scheduling"] = {player.name: realtime_threads(player.pid) for player in players}
            for round_ in range(ROUNDS):
                order = turns[round_ % len(turns):] + turns[:round_ % len(turns)]
                for density in DENSITIES:
                    for player in order:
                        shares, peak, report = _window(players, player, density, recorder)
                        playing[density][player.name].append(shares[player.name])
                        peaks[player.name] = min(peaks[player.name], peak)
                        for other in players:
                            if other is not player:
                                silent[other.name].append(shares[other.name])
                        if density == DENSITIES[-1]:
                            found["reports"].update(report)
            found["underruns"] = players[0].audio.health()["xruns"] - underruns
            found["jack_xruns"] = recorder.xruns
        finally:
            for player in reversed(players):
                player.close()
            if recorder is not None:
                recorder.close()
            sentinel.close()
    return found


def _result() -> BenchResult:
    jitter_st = 12 * np.log2(1 + PITCH_JITTER)
    return BenchResult(
        key="granular",
        title="Granulator CPU against pyo and scsynth",
        method=(f"A private realtime `jackd -R -P 10 -d dummy -r {SAMPLE_RATE} -p {PERIOD}` (as on a "
                "show machine: libjack runs every client's audio thread SCHED_FIFO 5, ours as the "
                "peers'; where the machine refuses realtime, `--no-realtime`, said below) runs three "
                "players at once, after a silent PyAudio stream that is never measured (the client "
                "JACK wakes first pays about twice the others' cost per period: before it, ours, "
                "started first, paid it), each its own process and JACK client: our audio process "
                f"(`LiveAudio`, {PERIOD} frames per block, its `Rack` holding the granulator alone "
                "on its bus, the table in the shared sample pool), pyo's `Particle` (pyo's JACK "
                f"server, buffer {PERIOD}, `bench/pyo_grains.py`) and SuperCollider's `scsynth` "
                f"(JACK, `-z {PERIOD} -Z {PERIOD}`) with one synth of `GrainBuf.ar(2, ...)` written "
                "from Python (`bench/scgf.py`, `bench/grain_players.py`). A yardstick plays in turn "
                "with them: `bench/fused_grains.py`, a PortAudio stream whose compiled callback (a "
                "numba cfunc, opened as our process opens its own: `engine/audio/native_stream.py`) "
                "makes each block of the same stream (4-point Hermite reads, a limiter like the "
                "rack's) in one numba call, with nothing else to do (no commands, tap, health "
                "report or views). Our process on this rack (granulators alone, no input, no MIDI "
                "port of its own) plays through its compiled callback too. A fifth process never "
                "plays: PyAudio's floor (`bench/pyaudio_floor.py`, a PyAudio stream on the same "
                "server whose callback returns silence, its thread state kept as ours keeps it), "
                "what any process that plays through PyAudio pays before it computes a sample. "
                "All play the same "
                f"stream: synchronous grains (our `timing = \"sync\"`, `Impulse.ar(density)`, "
                f"`Particle` `dev = 0`) of {DURATION * 1000:.0f} ms with a Hann window (ours, "
                "GrainBuf's built-in envelope, pyo's `HannTable`), read from one mono table "
                f"({TABLE.name}, resampled to {SAMPLE_RATE} Hz once and handed to each: our pool, "
                "scsynth's `/b_allocRead`, pyo's `SndTable`) at a position drawn uniformly in "
                f"{POSITION:g} +- {POSITION_DEVIATION:g} of the table and a pitch ratio drawn per "
                f"grain within +-{PITCH_JITTER * 100:.0f} % (ours: `pitch_deviation` "
                f"{jitter_st:.2f} semitones, 0.909..1.1; the peers: 1 + {PITCH_JITTER:g} x white "
                "noise sampled at the grain's onset, 0.9..1.1), centred, at "
                f"{20 * np.log10(GAIN):.0f} dB per grain; GrainBuf interpolates cubically "
                "(`interp` 4), ours with 4-point Hermite, `Particle` as pyo does (it has no "
                f"setting). For each density ({' and '.join(f'{d:,.0f}' for d in DENSITIES)} "
                f"grains per second, so {DENSITIES[0] * DURATION:.0f} and "
                f"{DENSITIES[-1] * DURATION:.0f} grains sounding at once), one player plays while "
                f"the other two are silent: from {SETTLE:g} s after it starts, over {SECONDS:g} s "
                "of wall time, each process's CPU time (`/proc/PID/stat` utime + stime, all "
                "threads) is read at both ends; the playing process's share of one core is its "
                "cost for the stream (fixed cost included), the silent ones' shares are their "
                f"fixed cost. {ROUNDS} round(s), the players' order turning each round; the "
                "figures are medians over rounds. A JACK client of the benchmark records whoever "
                f"plays; a capture under {SILENCE} is an error. Then, in this process, "
                f"`bench.granulator_load` times `Rack.render` with {granulator_load.GRAINS:,} "
                f"grains of {granulator_load.DURATION * 1000:.0f} ms sounding at once (a sync "
                f"cloud of {granulator_load.GRAINS / granulator_load.DURATION:,.0f} grains per "
                f"second) over {granulator_load.BLOCKS} blocks of {granulator_load.BLOCK} frames. "
                "Differences that remain: our process also runs the rack's limiter and bus gain, "
                "copies each block to its tap and has a Python main thread waking every 100 ms; "
                "pyo's process has an idle Python main thread waiting on its stdin."),
        goal=(f"Goal: at each density our process's CPU time <= {GOAL_RATIO:g}x the better "
              f"peer's (the lower of pyo's and scsynth's), and the granulator at "
              f"{granulator_load.GRAINS:,} simultaneous grains <= {GOAL_SHARE:g} % of a block: "
              "clouds as dense as the dedicated engines' for no more CPU."))


def run() -> BenchResult:
    result = _result()
    missing = [why for ok, why in (
        (shutil.which("scsynth"), "scsynth not found (Debian package supercollider-server)"),
        (find_spec("pyo"), "pyo not installed (pip install '.[bench]')")) if not ok]
    if missing:
        result.error = "; ".join(missing) + "; `make bench` installs both"
        return result
    times, fewest = granulator_load.block_times()
    block = granulator_load.BLOCK / granulator_load.SAMPLE_RATE
    share, p99 = 100 * float(np.median(times)) / block, 100 * float(np.percentile(times, 99)) / block
    table = load_audio_file(TABLE, SAMPLE_RATE)[:, 0].copy()
    try:
        with tempfile.TemporaryDirectory(prefix="showrunner-grains-") as folder:
            wav = Path(folder) / "table.wav"
            soundfile.write(wav, table, SAMPLE_RATE, subtype="FLOAT")
            found = _measure(wav, table)
    except (JackUnavailable, RuntimeError, TimeoutError, OSError) as error:
        result.error = f"{error}"
        return result
    quiet = {name: peak for name, peak in found["peaks"].items() if peak < SILENCE}
    if quiet:
        result.error = "silent in the capture: " + ", ".join(
            f"{name} (peak {peak:.4f})" for name, peak in quiet.items())
        return result
    floor = 100 * median(found["silent"]["floor"])
    for density in DENSITIES:
        shares = {name: 100 * median(values) for name, values in found["playing"][density].items()}
        better = min(shares["pyo"], shares["scsynth"])
        ratio = shares["ours"] / better
        tag = f"{density:,.0f} grains/s"
        result.figures += [
            Figure(f"{tag}: ours, CPU % of one core", shares["ours"], "%"),
            Figure(f"{tag}: pyo Particle, CPU % of one core", shares["pyo"], "%"),
            Figure(f"{tag}: scsynth GrainBuf, CPU % of one core", shares["scsynth"], "%"),
            Figure(f"{tag}: ours / better peer", ratio, "x", f"<= {GOAL_RATIO:g}",
                   bool(ratio <= GOAL_RATIO)),
            Figure(f"{tag}: ours / yardstick", shares["ours"] / shares["fused"], "x"),
            Figure(f"{tag}: yardstick, one compiled call a block (bench/fused_grains.py), CPU % of one core",
                   shares["fused"], "%"),
            Figure(f"{tag}: yardstick / better peer", shares["fused"] / better, "x"),
        ]
    for name, values in found["silent"].items():
        label = "PyAudio floor (a stream whose callback returns silence)" if name == "floor" \
            else f"{name}, silent"
        result.figures.append(Figure(f"{label}: CPU % of one core", 100 * median(values), "%"))
    result.figures += [
        Figure(f"{granulator_load.GRAINS:,} grains at once: median block, % of the block", share,
               "%", f"<= {GOAL_SHARE:g} %", bool(share <= GOAL_SHARE)),
        Figure(f"{granulator_load.GRAINS:,} grains at once: p99 block, % of the block", p99, "%"),
    ]
    status = found["reports"]
    rounds = {density: {name: ", ".join(f"{100 * v:.1f}" for v in values)
                        for name, values in found["playing"][density].items()}
              for density in DENSITIES}
    idle = {name: 100 * median(values) for name, values in found["silent"].items()}
    result.notes += [
        "Above each process's own silent cost (playing minus silent, % of one core): " + "; ".join(
            f"{density:,.0f}/s: " + ", ".join(
                f"{name} {100 * median(values) - idle[name]:.2f}"
                for name, values in found["playing"][density].items())
            for density in DENSITIES) + ".",
        f"The PyAudio floor: {floor:.2f} % of one core for a process that plays only silence "
        "through PyAudio (`bench/pyaudio_floor.py`: JACK's client thread, PortAudio, and PyAudio "
        "entering Python every period; ours and the yardstick, on compiled callbacks, do not pay "
        "the last), against the better peer's "
        + ", ".join(f"{min(100 * median(found['playing'][d]['pyo']), 100 * median(found['playing'][d]['scsynth'])):.2f} % "
                    f"at {d:,.0f}/s" for d in DENSITIES)
        + " for the whole stream. Per round, floor: " + ", ".join(f"{100 * v:.1f}" for v in found["silent"]["floor"]) + ".",
        "Per round, % of one core: " + "; ".join(
            f"{density:,.0f}/s: " + ", ".join(f"{name} {text}" for name, text in by_name.items())
            for density, by_name in rounds.items()) + ".",
        f"{_scsynth_version()}; its own /status at {DENSITIES[-1]:,.0f} grains/s: "
        f"{status.get('ugens', '?')} unit generators, average CPU "
        f"{status.get('avg_cpu', float('nan')):.1f} % of its period. Our callback's own compute "
        f"at {DENSITIES[-1]:,.0f} grains/s (its timing of each block): "
        f"{100 * status.get('callback', float('nan')):.1f} % of one core.",
        "Lowest peak heard per window: " + ", ".join(
            f"{name} {peak:.2f}" for name, peak in found["peaks"].items())
        + f" (ours after its limiter); our process counted {found['underruns']} underrun(s), "
        f"the JACK server {found['jack_xruns']} missed cycle(s) over the run.",
        f"JACK: {found['jack']}. Realtime threads of each player (thread, policy, priority): "
        + "; ".join(f"{name} {', '.join(f'{policy} {priority}' for _, policy, priority in threads) or 'none'}"
                    for name, threads in found["scheduling"].items()) + ".",
        f"Block timing ({granulator_load.GRAINS:,} grains): at least {fewest} grains sounding in "
        f"every timed block; median {share:.1f} %, p99 {p99:.1f} % of a "
        f"{granulator_load.BLOCK}-frame block ({1000 * block:.2f} ms).",
    ]
    return result
