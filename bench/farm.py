"""Benchmark: the render farm (engine/farm.py) against a serial replay, side by side in one run.

A live run of the piece (``setlists/ldd-demo.toml``, all four parts in ``SHOWRUNNER_FARM_SECONDS``,
default 120: the farm is for long renders, and on a short one Ray's start and each worker's loading
outweigh what the goal is about; headless, no sound, played by the bundled MIDI file) writes a
performance log; it is replayed at 1280x720, 30 fps, serially and with ``--workers 2`` on a local
Ray (``SHOWRUNNER_FARM_WORKERS``, e.g. ``2,4,8`` on a larger machine), twice each, the order turning. Per replay: the wall time of the whole command (start-up, Ray's included) and the
CPU time of the whole machine over it (``/proc/stat``: Ray's processes are not the command's
children). The goals: the chunked replay's CPU time over the serial's <= 1.10 (what the pass, the
snapshots, each worker's loading and the join cost), and its wall time over the serial's where two
cores are free (context: the pass and two workers share these two cores), and with N workers
where N cores are free the speed-up over the serial replay >= 0.8 x N. The show log of each chunked
replay says when its pass ended and when each chunk's steps did (``showrunner.farm`` lines).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ldd_run import MIDI_FILE, demo_setlist_text
from bench.result import BenchResult, Figure
from bench.settings import number

SECONDS_VARIABLE = "SHOWRUNNER_FARM_SECONDS"
WORKERS_VARIABLE = "SHOWRUNNER_FARM_WORKERS"
GOAL_CPU = 1.10
GOAL_SCALING = 0.8  # speed-up over N, where N cores are free
SIZE, FPS = "1280x720", 30


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    with open("/proc/stat", encoding="ascii") as file:
        fields = [int(v) for v in file.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _command(*args: str) -> tuple[float, float]:
    busy, started = _busy_seconds(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"showrunner {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started, _busy_seconds() - busy


def _workers() -> list[int]:
    text = os.environ.get(WORKERS_VARIABLE, "2")
    try:
        workers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"{WORKERS_VARIABLE}: {text!r} is not a list of worker counts") from None
    if not workers or min(workers) < 2:
        raise ValueError(f"{WORKERS_VARIABLE}: {text!r}: give counts of 2 or more")
    return workers


def run() -> BenchResult:
    seconds = number(SECONDS_VARIABLE, 120.0)
    counts = _workers()
    result = BenchResult("farm", "Render farm: a chunked replay against a serial one", __doc__.split("\n\n")[1],
                         f"chunked CPU time <= {GOAL_CPU:.2f}x the serial replay's; speed-up >= {GOAL_SCALING} x N "
                         "where N cores are free")
    with tempfile.TemporaryDirectory(prefix="bench-farm-") as folder:
        work = Path(folder)
        setlist = work / "ldd.toml"
        setlist.write_text(demo_setlist_text(seconds / 4))
        log = work / "live.perf.jsonl"
        _command("run", str(setlist), "--midi-file", str(MIDI_FILE), "--headless", "--no-audio", "--duration",
                 str(seconds), "--perf-log", str(log), "--log-dir", str(work / "logs"))
        kinds = [1, *counts]
        times: dict[int, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for round_ in range(2):
            for kind in (kinds if round_ == 0 else kinds[::-1]):
                extra = ["--workers", str(kind)] if kind > 1 else []
                times[kind].append(_command("replay", str(log), "--out", str(work / f"w{kind}.mkv"), "--size", SIZE,
                                            "--fps", str(FPS), "--log-dir", str(work / "logs"), *extra))
    serial_wall = min(wall for wall, _ in times[1])
    serial_cpu = min(cpu for _, cpu in times[1])
    result.figures += [Figure("serial replay, wall", serial_wall, "s"), Figure("serial replay, CPU", serial_cpu, "s")]
    cores = os.cpu_count() or 1
    for count in counts:
        wall = min(wall for wall, _ in times[count])
        cpu = min(cpu for _, cpu in times[count])
        ratio = cpu / serial_cpu
        result.figures += [
            Figure(f"{count} workers, wall", wall, "s"),
            Figure(f"{count} workers, CPU", cpu, "s"),
            Figure(f"{count} workers: chunked CPU / serial CPU", ratio, "x", f"<= {GOAL_CPU:.2f}", ratio <= GOAL_CPU),
        ]
        speedup = serial_wall / wall
        if count < cores:  # the pass and the driver need a core beside the workers
            result.figures.append(Figure(f"{count} workers: speed-up / {count}", speedup / count, "x",
                                         f">= {GOAL_SCALING}", speedup / count >= GOAL_SCALING))
        else:
            result.figures.append(Figure(f"{count} workers: chunked wall / serial wall", wall / serial_wall, "x"))
    result.figures.append(Figure("show seconds per wall second, serial", seconds / serial_wall, "x"))
    result.notes.append(f"{seconds:g} s of the piece at {SIZE}, {FPS} fps on {cores} cores; best of 2 of each, "
                        "machine-wide CPU")
    return result


if __name__ == "__main__":
    outcome = run()
    for figure in outcome.figures:
        print(f"{figure.label}: {figure.formatted()}")
