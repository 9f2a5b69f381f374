"""The three players of the granular benchmark behind one small interface: our audio process (its
rack: the granulator alone), scsynth playing ``GrainBuf`` and pyo playing ``Particle``, each a
process of its own on the benchmark's JACK server, so its CPU time can be read from ``/proc``.

Every player plays the same stream: ``play(density)`` starts synchronous grains at ``density`` per
second, each ``DURATION`` s long with a Hann window, read from one mono table at a position drawn
in ``POSITION`` +- ``POSITION_DEVIATION`` (fractions of the table) and a pitch ratio drawn around 1
by +-``PITCH_JITTER``, at gain ``GAIN``; ``stop()`` ends it. ``ports`` is a regex of its JACK
output ports (for the recorder).
"""

from __future__ import annotations

import math
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.osc import OscClient
from bench.pyo_grains import CLIENT as PYO_CLIENT
from bench.scgf import AR, Output, SynthGraph, scgf_file
from bench.scsynth_peer import _free_udp_port
from engine.audio.live import LiveAudio
from engine.audio.pool import SamplePool
from engine.audio.rack import InstrumentSpec, RackConfig
from engine.child_process import stop_child

SAMPLE_RATE, PERIOD = 48000, 256
DURATION = 0.05  # seconds per grain
PITCH_JITTER = 0.10  # +- fraction of the pitch ratio
POSITION, POSITION_DEVIATION = 0.5, 0.4  # fractions of the table
GAIN = 0.05  # linear, per grain (-26 dB)
NOTE = 60  # our granulator's root: the table at its own pitch
SYNTH = "showrunner_grainbuf"
MAX_GRAINS = 512  # GrainBuf's default; the stream never has more than 50 at once


class OurPlayer:
    """Our audio process (``LiveAudio``) with a rack of the granulator alone, reading ``table``
    (mono float32 at SAMPLE_RATE) from a shared sample pool: a note on NOTE starts the cloud."""

    name = "ours"
    ports = r"^PortAudio.*:out_[01]$"

    def __init__(self, table: np.ndarray) -> None:
        self.pool = SamplePool.create(2 * len(table), max_tables=1)
        slot = self.pool.allocate("grains", len(table), 1)
        self.pool.fill(slot, table)
        settings = {"table": slot, "density": 200.0, "timing": "sync", "duration": DURATION,
                    "position": POSITION, "position_deviation": POSITION_DEVIATION,
                    # +-10 % of the ratio: 12 log2(1.1) = 1.65 semitones (0.909 .. 1.1)
                    "pitch_deviation": 12 * math.log2(1 + PITCH_JITTER),
                    "window": "hann", "gain_db": 20 * math.log10(GAIN), "root": NOTE}
        rack = RackConfig(sample_rate=SAMPLE_RATE, block_size=PERIOD, buses={"grains": 0.0},
                          instruments=[InstrumentSpec(name="grains", kind="granulator",
                                                      bus="grains", settings=settings)],
                          notes=["grains"])
        self.audio = LiveAudio(rack, pool=self.pool)
        self.audio.start()
        if not self.audio.wait_running(30.0):
            self.close()
            raise RuntimeError("our audio process did not start on JACK")

    @property
    def pid(self) -> int:
        return self.audio.pid

    def play(self, density: float) -> None:
        self.audio.instrument("grains").set("density", float(density))
        self.audio.note_on(NOTE, 127)

    def stop(self) -> None:
        self.audio.note_off(NOTE)

    def close(self) -> None:
        self.audio.close()
        self.pool.close()


def grainbuf_synthdef() -> SynthGraph:
    """GrainBuf.ar(2, Impulse.ar(density), DURATION, buffer 0, rate 1 + WhiteNoise.ar *
    PITCH_JITTER, pos POSITION + WhiteNoise.ar * POSITION_DEVIATION, cubic interpolation, pan 0,
    the built-in Hann envelope, MAX_GRAINS) * amp, Out.ar(0). GrainBuf samples rate and pos at
    each trigger's sample."""
    graph = SynthGraph(SYNTH, {"density": 200.0, "amp": GAIN})
    density, amp = graph.controls()
    trigger = graph.ugen("Impulse", AR, [density, 0.0])
    rate = graph.ugen("MulAdd", AR, [graph.ugen("WhiteNoise", AR, []), PITCH_JITTER, 1.0])
    position = graph.ugen("MulAdd", AR, [graph.ugen("WhiteNoise", AR, []), POSITION_DEVIATION,
                                         POSITION])
    grains = graph.ugen("GrainBuf", AR, [trigger, DURATION, 0.0, rate, position, 4.0, 0.0, -1.0,
                                         float(MAX_GRAINS)], outputs=2)
    left = graph.binary("*", AR, Output(grains.ugen, 0), amp)
    right = graph.binary("*", AR, Output(grains.ugen, 1), amp)
    graph.ugen("Out", AR, [0.0, left, right], outputs=0)
    return graph


class ScsynthPlayer:
    """scsynth (JACK, ``-z`` = ``-Z`` = PERIOD) with ``wav`` in buffer 0 and the GrainBuf synth
    definition loaded; ``play`` starts one synth, ``stop`` frees it."""

    name = "scsynth"
    ports = r"^SuperCollider:out_[12]$"

    def __init__(self, wav: Path) -> None:
        port = _free_udp_port()
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            ["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-z", str(PERIOD), "-Z", str(PERIOD),
             "-R", "0", "-D", "0", "-l", "4"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.client = OscClient("127.0.0.1", port)
        self._node = 1000
        try:
            self._wait_answering()
            self.client.send("/b_allocRead", 0, str(wav))
            self.client.wait_for("/done", 10.0)
            self.client.send("/d_recv", scgf_file([grainbuf_synthdef()]))
            self.client.wait_for("/done", 5.0)
        except BaseException:
            self.close()
            raise

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + 15.0
        while True:  # scsynth answers once its JACK client runs
            if self.process.poll() is not None:
                self._log.seek(0)
                tail = " | ".join(self._log.read().decode(errors="replace").strip().splitlines()[-3:])
                raise RuntimeError(f"scsynth exited with status {self.process.returncode}: {tail}")
            self.client.send("/status")
            try:
                self.client.wait_for("/status.reply", 0.5)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError("scsynth did not answer /status within 15 s") from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def play(self, density: float) -> None:
        self._node += 1
        self.client.send("/s_new", SYNTH, self._node, 1, 0, "density", float(density), "amp", GAIN)
        self.client.send("/sync", 1)
        self.client.wait_for("/synced", 5.0)

    def stop(self) -> None:
        self.client.send("/n_free", self._node)

    def status(self) -> dict:
        """scsynth's own /status: unit generators, synths, average and peak CPU (% of a period)."""
        self.client.send("/status")
        reply = self.client.wait_for("/status.reply", 2.0)
        return {"ugens": reply[1], "synths": reply[2], "avg_cpu": reply[5], "peak_cpu": reply[6]}

    def close(self) -> None:
        stop_child(self.process, lambda: self.client.send("/quit"))
        self.client.close()
        self._log.close()


class _ChildPlayer:
    """A player in a Python child process (``python -m MODULE ARGS``) that prints ``ready``, then
    answers each command line on its stdin with ``ok``."""

    name = "child"

    def __init__(self, module: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=Path(__file__).resolve().parent.parent)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()  # a timeout even if it hangs
        try:
            self._expect("ready", 30.0)
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _expect(self, word: str, timeout: float) -> None:
        """Read the child's lines until ``word`` (it may print notices of its own before it)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"the {self.name} player exited ({self.process.wait()}): "
                                   f"{' | '.join(seen[-3:])}")
            if line == word:
                return
            if line:
                seen.append(line)
        raise RuntimeError(f"the {self.name} player did not say {word!r} within {timeout:g} s")

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        def ask() -> None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
            except OSError:
                self.process.terminate()

        stop_child(self.process, ask)


class _ToldPlayer(_ChildPlayer):
    """A child player told what to play on its stdin (``play DENSITY``, ``stop``)."""

    def _tell(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        self._expect("ok", 5.0)

    def play(self, density: float) -> None:
        self._tell(f"play {density!r}")

    def stop(self) -> None:
        self._tell("stop")


class PyoPlayer(_ToldPlayer):
    """pyo's ``Particle`` in a child process (:mod:`bench.pyo_grains`)."""

    name = "pyo"
    ports = rf"^{PYO_CLIENT}:output_[12]$"

    def __init__(self, wav: Path) -> None:
        super().__init__("bench.pyo_grains", str(wav), repr(GAIN), repr(DURATION), repr(PITCH_JITTER),
                         repr(POSITION), repr(POSITION_DEVIATION))


class FusedPlayer(_ToldPlayer):
    """Not one of ours nor a peer: the yardstick (:mod:`bench.fused_grains`), the same stream made
    in one compiled call a block by a compiled PortAudio callback."""

    name = "fused"
    ports = r"^fused_grains:out_[01]$"

    def __init__(self, wav: Path) -> None:
        super().__init__("bench.fused_grains", str(wav))


class FloorPlayer(_ChildPlayer):
    """Not a player: PyAudio's floor (:mod:`bench.pyaudio_floor`), a stream whose callback returns
    silence, measured beside the players as what any PyAudio process pays before its first sample."""

    name = "floor"

    def __init__(self) -> None:
        super().__init__("bench.pyaudio_floor")
