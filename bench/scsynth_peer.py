"""Benchmark: our audio process against SuperCollider's scsynth playing the same partials.

On one private JACK server (dummy driver, 256 frames per period), our audio process (its rack:
the overtone instrument alone, as a setlist without a [sound] table gets it) plays
64 voices x 8 partials held by ADSR envelopes, then scsynth plays 64 synths of 8 ``SinOsc``
partials each (the synth definition is built in :mod:`bench.scgf`: the same partial frequencies,
weights, ADSR, equal-power pan and detune glide), each alone for the same wall time while the
detune of all voices is changed 30 times a second. The CPU time each process used over that time
(``/proc/PID/stat`` utime + stime, every thread) is compared. A JACK client records each one's
output, and a run whose capture is silent is an error, not a figure. Each process is also
measured as long with nothing playing: the fixed cost of a JACK client.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.jack_recorder import JackRecorder
from bench.jack_server import JackUnavailable, jack_server
from bench.osc import OscClient
from bench.result import BenchResult, Figure
from bench.scgf import AR, KR, Output, SynthGraph, scgf_file
from engine.audio.config import MixerConfig
from engine.audio.live import LiveAudio
from engine.audio.shared import LOADS
from engine.audio.tuning import note_frequencies
from engine.child_process import stop_child
from scenes.ldd.sound.settings import OvertoneSettings

SAMPLE_RATE, PERIOD = 48000, 256
VOICES, PARTIALS = 64, 8
LOWEST = 36  # notes C2 .. D#7: every partial below 0.45 x the sample rate, in both synths
VELOCITY = 100
SECONDS = 20.0  # measured wall time per process
SETTLE = 2.0  # seconds after the notes start before measuring
DETUNE_RATE = 30.0  # detune changes per second (a learner's ticks)
GOAL_RATIO = 1.0  # ours playing / scsynth playing (at -z PERIOD)
GOAL_IDLE_RATIO = 1.5  # ours idle / scsynth idle
SILENCE = 0.01  # a capture whose peak stays under this (-40 dBFS) is not the synth playing
SYNTH = "showrunner_overtones"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # fields from the third (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def overtone_synthdef(config: MixerConfig) -> SynthGraph:
    """One voice of the overtone mixer as a SuperCollider synth: ``partials`` SinOsc.ar, partial
    k >= 2 at k * freq * (1 + Lag.kr(detune)), weights k**-rolloff normalised, EnvGen.kr with the
    mixer's ADSR (scaled by ``amp``, freed when released), Pan2.ar, Out.ar(0)."""
    voice = OvertoneSettings(**config.instrument_settings())  # [audio]'s overtone keys
    graph = SynthGraph(SYNTH, {"freq": 440.0, "detune": 0.0, "amp": 0.1, "pan": 0.0, "gate": 1.0})
    freq, detune, amp, pan, gate = graph.controls()
    glided = graph.ugen("Lag", KR, [detune, voice.detune_glide])
    ratio = graph.binary("+", KR, glided, 1.0)
    moved = graph.binary("*", KR, freq, ratio)
    weights = np.arange(1, voice.partials + 1, dtype=np.float64) ** -voice.rolloff
    weights /= weights.sum()
    mix = None
    for k in range(1, voice.partials + 1):
        partial_freq = freq if k == 1 else graph.binary("*", KR, moved, float(k))
        sine = graph.ugen("SinOsc", AR, [partial_freq, 0.0])
        weight = float(weights[k - 1])
        mix = graph.binary("*", AR, sine, weight) if mix is None else \
            graph.ugen("MulAdd", AR, [sine, weight, mix])
    c = voice.curve
    shape = 5  # Env's numeric curve
    envelope = [0.0, 3, 2, -99,  # initial level, stages, release node, no loop node
                1.0, voice.attack, shape, c,
                voice.sustain, voice.decay, shape, c,
                0.0, voice.release, shape, c]
    level = graph.ugen("EnvGen", KR, [gate, amp, 0.0, 1.0, 2, *envelope])  # doneAction 2: free
    voice = graph.binary("*", AR, mix, level)
    stereo = graph.ugen("Pan2", AR, [voice, pan, 1.0], outputs=2)
    graph.ugen("Out", AR, [0.0, stereo, Output(stereo.ugen, 1)], outputs=0)
    return graph


def _voices(config: MixerConfig) -> list[tuple[int, float, float, float]]:
    """(note, Hz, amplitude, pan -1..1) of each voice, as the mixer computes them."""
    frequencies = note_frequencies(config.tuning, config.tuning_root, config.reference_hz,
                                   config.reference_note)
    voice = OvertoneSettings(**config.instrument_settings())  # [audio]'s overtone keys
    velocity = VELOCITY / 127
    amp = voice.level * (1 - voice.velocity_sensitivity + voice.velocity_sensitivity * velocity ** 2)
    return [(note, float(frequencies[note]), amp,
             float(np.clip(voice.spread * (note - 64) / 64.0, -1.0, 1.0)))
            for note in range(LOWEST, LOWEST + VOICES)]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _measure(pid: int, recorder: JackRecorder, send_detune: Callable[[float], None]) -> tuple[float, float]:
    """(CPU seconds of ``pid`` over SECONDS of wall time, peak of what was heard meanwhile)."""
    time.sleep(SETTLE)
    mark = recorder.mark()
    cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
    step = 0
    while (now := time.monotonic()) < wall_start + SECONDS:
        send_detune(0.02 * math.sin(2 * math.pi * 0.25 * (now - wall_start)))
        step += 1
        time.sleep(max(0.0, wall_start + step / DETUNE_RATE - time.monotonic()))
    cpu = cpu_seconds(pid) - cpu_start
    wall = time.monotonic() - wall_start
    heard = recorder.since(mark)
    return cpu * SECONDS / wall, float(np.abs(heard).max()) if len(heard) else 0.0


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU time so far of each thread of process ``pid``, in seconds, by thread id."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        times[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return times


def _callback_share(audio: LiveAudio) -> float:
    """Share of one core our callback spent computing over the last blocks the shared state keeps
    (its own timing of each block, from entry until the block is ready; on the granulators'
    one-call path the tap is written within it, elsewhere after)."""
    state = audio.state
    last = int(state.get("blocks")) - 1
    first = max(0, last - (LOADS - 16))  # clear of the block being written
    index = np.arange(first, last + 1) % LOADS
    span = state.block_starts[index[-1]] - state.block_starts[index[0]]
    return float(state.loads[index[:-1]].sum() / span) if span > 0 else 0.0


def _ours(config: MixerConfig) -> tuple[float, float, int, float, dict[str, float]]:
    """(CPU seconds, peak heard, underruns) of our audio process playing the voices, its CPU
    seconds over the same wall time before any note (its fixed cost), and where that fixed cost
    went (shares of one core: the busiest thread, our callback's own compute, the other threads)."""
    recorder = JackRecorder(seconds=SECONDS + SETTLE + 5)
    audio = LiveAudio(config)
    try:
        audio.start()
        if not audio.wait_running(15.0):
            raise RuntimeError("our audio process did not start on JACK "
                               f"({audio.state.device or 'no device'})")
        if not recorder.wait_connected(10.0):
            raise RuntimeError("the recorder found no PortAudio output ports")
        before, started = thread_cpu_seconds(audio.pid), time.monotonic()
        idle, _ = _measure(audio.pid, recorder, audio.detune)
        after, wall = thread_cpu_seconds(audio.pid), time.monotonic() - started
        used = sorted((after[tid] - before.get(tid, 0.0) for tid in after), reverse=True)
        split = {"busiest thread": used[0] / wall, "other threads": sum(used[1:]) / wall,
                 "callback compute": _callback_share(audio)}
        for note, _hz, _amp, _pan in _voices(config):
            audio.note_on(note, VELOCITY)
        underruns = audio.health()["xruns"]
        cpu, peak = _measure(audio.pid, recorder, audio.detune)
        return cpu, peak, audio.health()["xruns"] - underruns, idle, split
    finally:
        audio.close()
        recorder.close()


def _scsynth(config: MixerConfig, control_block: int,
             measure_idle: bool) -> tuple[float, float, dict, float | None]:
    """(CPU seconds, peak heard, scsynth's /status figures) of scsynth playing the voices, and
    (when ``measure_idle``) its CPU seconds over the same wall time before any synth."""
    port = _free_udp_port()
    log = tempfile.TemporaryFile()
    recorder = JackRecorder(seconds=SECONDS + SETTLE + 5, pattern=r"^SuperCollider:out_[12]$")
    server = subprocess.Popen(
        ["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-z", str(control_block),
         "-Z", str(PERIOD), "-R", "0", "-D", "0", "-l", "4"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    client = OscClient("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 15.0
        while True:  # scsynth answers once its JACK client runs
            if server.poll() is not None:
                log.seek(0)
                tail = " | ".join(log.read().decode(errors="replace").strip().splitlines()[-3:])
                raise RuntimeError(f"scsynth exited with status {server.returncode}: {tail}")
            client.send("/status")
            try:
                client.wait_for("/status.reply", 0.5)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError("scsynth did not answer /status within 15 s") from None
        client.send("/d_recv", scgf_file([overtone_synthdef(config)]))
        client.wait_for("/done", 5.0)
        if not recorder.wait_connected(10.0):
            raise RuntimeError("the recorder found no SuperCollider output ports")

        def set_detune(d: float) -> None:
            client.send("/n_set", 0, "detune", float(d))  # every synth in the root group

        idle = _measure(server.pid, recorder, set_detune)[0] if measure_idle else None
        for number, (_note, hz, amp, pan) in enumerate(_voices(config)):
            client.send("/s_new", SYNTH, 1000 + number, 1, 0,  # add to the tail of the root group
                        "freq", hz, "amp", amp, "pan", pan, "gate", 1.0)
        client.send("/sync", 1)
        client.wait_for("/synced", 5.0)
        cpu, peak = _measure(server.pid, recorder, set_detune)
        client.send("/status")
        reply = client.wait_for("/status.reply", 2.0)
        status = {"ugens": reply[1], "synths": reply[2], "avg_cpu": reply[5], "peak_cpu": reply[6]}
        return cpu, peak, status, idle
    finally:
        stop_child(server, lambda: client.send("/quit"))
        client.close()
        recorder.close()
        log.close()


def _scsynth_version() -> str:
    try:
        out = subprocess.run(["scsynth", "-v"], capture_output=True, text=True, timeout=5)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "scsynth (version unknown)"


def run() -> BenchResult:
    config = MixerConfig(sample_rate=SAMPLE_RATE, block_size=PERIOD, polyphony=VOICES,
                         partials=PARTIALS, envelope="adsr")
    result = BenchResult(
        key="scsynth",
        title="Audio process CPU against scsynth",
        method=(f"A private `jackd --no-realtime -d dummy -r {SAMPLE_RATE} -p {PERIOD}` runs. First "
                f"our audio process (`LiveAudio`, {PERIOD} frames per block; its `Rack` holds the overtone "
                "instrument alone, on its bus, as `legacy_rack_config` builds it for a setlist "
                f"without a [sound] table) plays {VOICES} "
                f"held ADSR voices x {PARTIALS} partials (notes {LOWEST}..{LOWEST + VOICES - 1}, "
                f"velocity {VELOCITY}); then SuperCollider's `scsynth` (Debian's supercollider-server, "
                f"JACK backend, hardware buffer {PERIOD}) plays {VOICES} synths of a synth definition "
                "written from Python in the SCgf version 2 format (`bench/scgf.py`, loaded with "
                f"`/d_recv`, started with `/s_new`): {PARTIALS} `SinOsc.ar` per synth "
                f"({VOICES * PARTIALS} in all), partial k >= 2 at k * freq * (1 + `Lag.kr`(detune)), "
                "the mixer's partial weights summed with `MulAdd`, `EnvGen.kr` with the mixer's ADSR "
                "(attack, decay, sustain, release and curve) scaled by the voice's amplitude, "
                "`Pan2.ar` with the mixer's pan for the note, `Out.ar`; fundamentals, amplitudes and pans "
                f"recomputed here from the mixer's tuning and settings. Each runs alone on the server and is measured from {SETTLE:g} s after "
                f"the notes start, over {SECONDS:g} s of wall time: the process's CPU time "
                "(`/proc/PID/stat` utime + stime, all threads) read at both ends, while the detune "
                f"of every voice changes {DETUNE_RATE:g} times a second (our ring `DETUNE` for all "
                "voices; `/n_set 0 detune`, which reaches every synth in scsynth's root group). Our "
                f"process and scsynth (`-z {PERIOD}`) are also measured for as long before any note: "
                "the fixed cost of a JACK client with nothing to play. scsynth runs twice: with its "
                f"control block equal to the period (`-z {PERIOD}`, our mixer's granularity: "
                "envelopes and glides per block) and with its default `-z 64`. A JACK client records "
                f"each one's output ports; a capture that stays under {SILENCE} is reported as an "
                "error. Differences that remain: our process also runs the rack's soft limiter and bus "
                "gains, copies every block to its tap in shared memory and has a Python main thread "
                "waking every 100 ms; scsynth has no limiter and clips nothing (JACK floats)."),
        goal=(f"Goal: playing, our CPU time <= {GOAL_RATIO:g}x scsynth's (at `-z {PERIOD}`), and "
              f"with nothing playing, our fixed cost <= {GOAL_IDLE_RATIO:g}x scsynth's: the "
              "rack (the voices compiled with numba, the rest of a block in numpy) costs no more "
              "than a C++ synthesis server doing the same work, and idles nearly as cheaply."))
    if shutil.which("scsynth") is None:
        result.error = "scsynth not found (Debian package supercollider-server; `make bench` installs it)"
        return result
    try:
        with jack_server(SAMPLE_RATE, PERIOD):
            ours, ours_peak, underruns, idle, split = _ours(config)
            if ours_peak < SILENCE:
                raise RuntimeError(f"our audio process was silent in the capture (peak {ours_peak:.4f})")
            peer, peer_peak, status, peer_idle = _scsynth(config, PERIOD, measure_idle=True)
            if peer_peak < SILENCE or status["synths"] != VOICES:
                raise RuntimeError(f"scsynth did not play: peak {peer_peak:.4f}, "
                                   f"{status['synths']} synths running (expected {VOICES})")
            default, default_peak, default_status, _ = _scsynth(config, 64, measure_idle=False)
            if default_peak < SILENCE or default_status["synths"] != VOICES:
                raise RuntimeError(f"scsynth -z 64 did not play: peak {default_peak:.4f}, "
                                   f"{default_status['synths']} synths running (expected {VOICES})")
    except (JackUnavailable, RuntimeError, TimeoutError, OSError) as error:
        result.error = f"{error}"  # no figure rather than a comparison with a peer that did not play
        return result
    ratio, idle_ratio = ours / peer, idle / peer_idle
    result.figures = [
        Figure("ours: CPU, % of one core", 100 * ours / SECONDS, "%"),
        Figure("ours, no voice sounding: CPU, % of one core", 100 * idle / SECONDS, "%"),
        Figure(f"scsynth -z {PERIOD}: CPU, % of one core", 100 * peer / SECONDS, "%"),
        Figure(f"scsynth -z {PERIOD}, no synth: CPU, % of one core", 100 * peer_idle / SECONDS, "%"),
        Figure("scsynth -z 64: CPU, % of one core", 100 * default / SECONDS, "%"),
        Figure(f"ours / scsynth -z {PERIOD}", ratio, "x", f"<= {GOAL_RATIO:g}", bool(ratio <= GOAL_RATIO)),
        Figure(f"ours / scsynth -z {PERIOD}, nothing playing", idle_ratio, "x",
               f"<= {GOAL_IDLE_RATIO:g}", bool(idle_ratio <= GOAL_IDLE_RATIO)),
        Figure("ours / scsynth -z 64", ours / default, "x"),
    ]
    result.notes += [
        f"{_scsynth_version()}; its own /status at the end: {status['ugens']} unit generators, "
        f"{status['synths']} synths, average CPU {status['avg_cpu']:.1f} % (-z {PERIOD}) and "
        f"{default_status['avg_cpu']:.1f} % (-z 64) of its audio period.",
        f"Peaks heard: ours {ours_peak:.2f} (after its limiter), scsynth {peer_peak:.2f} "
        f"(-z {PERIOD}) and {default_peak:.2f} (-z 64); our process counted {underruns} underrun(s) "
        "while measured.",
        f"Where our fixed cost goes, with nothing playing (shares of one core, from "
        f"/proc/PID/task): the busiest thread (the JACK callback's) "
        f"{100 * split['busiest thread']:.2f} %, of which our callback's own compute (its timing "
        f"of each block, `SharedAudioState.loads`) {100 * split['callback compute']:.2f} % and "
        f"the rest PortAudio's and libjack's wake-ups around it; every other thread (the main "
        f"thread's 100 ms watch loop, PortAudio's) {100 * split['other threads']:.2f} %.",
        "Measured apart (2026-12-06, `perf stat` of the silent audio process, 4 rounds of 8 s "
        "each way, interleaved): PyAudio made and deleted the callback thread's Python state every "
        "block (an mmap and munmap, page faults); kept (`engine.audio.server.keep_thread_state`), "
        "the process took 4.28 % of a core against 4.95 %, and its callback thread 0 page faults "
        "against about 190 a second. Its main thread watching a playing stream 10 times a second instead of 50: "
        "0.06 % of a core against 0.33 % (4 rounds of 5 s each way).",
    ]
    return result
