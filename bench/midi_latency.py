"""Benchmark 2: how long a MIDI message takes from a sender's port to a scene's ``on_midi``, via JACK.

A private JACK server (dummy driver) runs; a separate process (:mod:`bench.midi_sender`) plays
note-ons and note-offs into a virtual JACK port and notes ``time.perf_counter()`` at each send; the
engine's :class:`~engine.midi_port.MidiPortInput` stamps each arrival, and a probe scene notes the
time it handles each event in a show running in real time. CLOCK_MONOTONIC is shared by the two
processes, so the differences are direct.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from bench.jack_server import jack_server
from bench.midi_sender import index_of
from bench.result import BenchResult, Figure
from bench.temp_setlist import setlist_from_cues
from engine.clock import RealTime
from engine.midi import EventQueue, MidiEvent, NoteOff, NoteOn
from engine.midi_port import MidiPortInput
from engine.scene import Scene
from engine.show import Show, ShowOptions

MESSAGES = 500  # note-ons and note-offs, alternately
RATE = 50.0  # messages per second (each sent at a random point in the first half of its 20 ms slot)
TICK_RATE = 60.0  # Hz
SAMPLE_RATE, PERIOD = 48000, 256  # JACK: one process cycle = 5.33 ms
ROOT = Path(__file__).resolve().parent.parent


class BenchProbe(Scene):
    """Notes ``time.perf_counter()`` when each event reaches the scene, and consumes it."""

    name = "bench_probe"

    def load(self) -> None:
        self.handled: list[tuple[float, MidiEvent]] = []

    def on_midi(self, event: MidiEvent) -> bool:
        self.handled.append((time.perf_counter(), event))
        return True


@dataclass
class ArrivalLog(EventQueue):
    """The show's event queue, also keeping every (stamp, event) pushed into it."""

    arrivals: list = field(default_factory=list)

    def push(self, stamp: float, event: MidiEvent) -> None:
        self.arrivals.append((stamp, event))
        super().push(stamp, event)


class StartSignal:
    """A do-nothing MIDI source whose ``start`` (called as the show starts) tells the sender to go."""

    def __init__(self, pipe: IO[str]) -> None:
        self.pipe = pipe

    def start(self, origin: float) -> None:
        self.pipe.write("go\n")
        self.pipe.flush()

    def poll(self, now: float) -> None:
        pass


def _index(event: MidiEvent) -> int | None:
    if isinstance(event, NoteOn):
        return index_of(True, event.note, event.velocity)
    if isinstance(event, NoteOff):
        return index_of(False, event.note, event.velocity)
    return None


def read_line(stream: IO[str], timeout: float, what: str) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise RuntimeError(f"sender process: no {what} within {timeout:g} s")
    finally:
        selector.close()
    line = stream.readline()
    if not line:
        raise RuntimeError(f"sender process ended before {what}")
    return line


def _delays_ms(times: list[tuple[float, MidiEvent]], sends: list[float]) -> np.ndarray:
    delays = []
    for stamp, event in times:
        index = _index(event)
        if index is not None and 0 <= index < len(sends):
            delays.append((stamp - sends[index]) * 1000)
    return np.array(delays)


def _measure() -> tuple[list[float], list, list]:
    with jack_server(SAMPLE_RATE, PERIOD) as jack_env:
        sender = subprocess.Popen(
            [sys.executable, "-m", "bench.midi_sender", "--count", str(MESSAGES), "--rate", str(RATE)],
            cwd=ROOT, env={**os.environ, **jack_env}, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        port = None
        try:
            read_line(sender.stdout, 15, "'ready'")
            queue = ArrivalLog()
            setlist = setlist_from_cues([{"id": "probe", "scene": "bench_probe"}],
                                        tick_rate=TICK_RATE, fps=TICK_RATE)
            show = Show(setlist, ShowOptions(duration=MESSAGES / RATE + 1.5, fps=TICK_RATE),
                        RealTime(), display=None, queue=queue)
            show.load()
            port = MidiPortInput("bench-sender:piano", queue, time.perf_counter, api="jack")
            port.open()
            show.add_source(port)
            show.add_source(StartSignal(sender.stdin))
            show.run()
            report = json.loads(read_line(sender.stdout, 10, "its send times"))
            port.close()  # before the sender's port goes away: no "MIDI input lost" warning
            port = None
            sender.stdin.close()  # the sender closes its port and exits
            sender.wait(timeout=5)
        finally:
            if port is not None:
                port.close()
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    return report["sends"], queue.arrivals, show.scenes[0].handled


def _percentiles(label: str, values: np.ndarray, goal_p99: float | None = None) -> list[Figure]:
    p50, p99, top = np.percentile(values, 50), np.percentile(values, 99), values.max()
    goal = f"<= {goal_p99:.1f} ms" if goal_p99 is not None else ""
    return [Figure(f"{label} p50", p50, "ms"),
            Figure(f"{label} p99", p99, "ms", goal, None if goal_p99 is None else bool(p99 <= goal_p99)),
            Figure(f"{label} max", top, "ms")]


def run() -> BenchResult:
    tick_ms = 1000 / TICK_RATE
    cycle_ms = 1000 * PERIOD / SAMPLE_RATE
    arrival_goal = 2 * cycle_ms
    handler_goal = tick_ms + arrival_goal
    result = BenchResult(
        key="midi",
        title="MIDI arrival to scene handler through JACK",
        method=(f"A private `jackd --no-realtime -d dummy -r {SAMPLE_RATE} -p {PERIOD}` runs (one "
                f"process cycle = {cycle_ms:.2f} ms). A separate sender process opens the virtual JACK "
                f"port `bench-sender:piano` with python-rtmidi and sends {MESSAGES} note-on/note-off "
                f"messages at about {RATE:g} per second (each at a random point in the first half of "
                "its slot, so sends fall on every phase of the show's tick), taking "
                "`time.perf_counter()` just before each send. In the engine process "
                "`MidiPortInput(..., api='jack')` stamps each message on arrival (the stamp pushed "
                "into the show's event queue) and a show running in `RealTime` at "
                f"{TICK_RATE:g} Hz with no display plays one cue whose scene, `bench_probe`, notes "
                "`time.perf_counter()` in `on_midi`. `perf_counter` is CLOCK_MONOTONIC on Linux, "
                "shared by both processes, so *arrival* = queue stamp - send time and *handler* = "
                "handler time - send time. *Tick wait* = handler time - queue stamp is the engine's "
                "own share. Events are delivered only at tick boundaries (a fixed-timestep design: "
                "an event stamped at show second s is applied in the first tick ending at or after "
                f"s), so the handler delay is the arrival delay plus up to one tick ({tick_ms:.1f} ms "
                f"at {TICK_RATE:g} Hz), about half a tick on average: the tick quantisation "
                "dominates, JACK transport is a few milliseconds at most."),
        goal=(f"Goal: arrival p99 <= two JACK cycles ({arrival_goal:.1f} ms); handler p99 <= one "
              f"tick plus that ({handler_goal:.1f} ms): nothing beyond the tick quantisation adds up. "
              "Sound does not wait for ticks (note-ons go to the audio process at arrival), so this "
              "delay is visual only."))
    sends, arrivals, handled = _measure()
    arrival = _delays_ms(arrivals, sends)
    handler = _delays_ms(handled, sends)
    if len(handler) == 0:
        raise RuntimeError("no MIDI message reached the probe scene")
    stamps = {}
    for stamp, event in arrivals:
        stamps.setdefault(_index(event), stamp)
    wait = np.array([(t - stamps[_index(e)]) * 1000 for t, e in handled if _index(e) in stamps])
    every = set(range(len(sends)))
    lost_in_transport = sorted(every - {_index(e) for _, e in arrivals})
    lost_in_engine = sorted(every - {_index(e) for _, e in handled} - set(lost_in_transport))
    if lost_in_transport:
        result.notes.append(f"{len(lost_in_transport)} message(s) never reached the engine's port "
                            f"(JACK transport; indices {lost_in_transport[:10]}).")
    if lost_in_engine:
        result.notes.append(f"{len(lost_in_engine)} message(s) were stamped on arrival but never "
                            f"handled by the scene (indices {lost_in_engine[:10]}).")
    share = np.median(wait) / np.median(handler) * 100
    result.notes.append(f"Here the median handler delay is {np.median(handler):.1f} ms, of which "
                        f"{np.median(arrival):.1f} ms is JACK transport and {np.median(wait):.1f} ms "
                        f"({share:.0f} %) waiting for the next tick.")
    result.figures = [
        Figure("messages sent", len(sends), "count"),
        Figure("messages stamped on arrival", len(arrival), "count", f"= {len(sends)}",
               len(arrival) == len(sends)),
        Figure("messages handled", len(handler), "count", f"= {len(sends)}", len(handler) == len(sends)),
        *_percentiles("arrival (stamp - send)", arrival, arrival_goal),
        *_percentiles("handler (on_midi - send)", handler, handler_goal),
        *_percentiles("tick wait (on_midi - stamp)", wait),
    ]
    return result
