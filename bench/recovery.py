"""Benchmark: recovery (engine/supervisor.py): from a show's death to its picture back, for a death
1, 10 and 30 minutes into the piece.

The piece (``setlists/ldd-demo.toml``, its four parts sharing the time) is played by real piano
performances joined end to end (the four in assets/midi/performances, again from the start when
they run out). Its performance log up to the moment of death is written by the same show ticked in
virtual time without drawing (a log as the live show writes it: every input by tick, with no end
line, as a show that dies leaves it). Then ``showrunner run --resume LOG`` (the command the
supervisor runs, headless, no sound) is timed from its start to the line saying the show is back
(after the catch-up; the first frame follows within a frame): the gap a performer sees, less the
supervisor's noticing the death (it waits on the process: milliseconds). The show that died saved
its whole state every 30 s (``--save-state-every``'s default), the last 29 s before its death (the
longest catch-up), and the restarted show starts from it; again without it, from the log's start,
for comparison. The same with a standby
(``--standby``: a second show loaded and waiting, ticking along behind the show through its log,
told to take over as the supervisor tells it).
Also: the catch-up's speed, show seconds per wall second. The goal, the issue's: the picture back
within 5 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ldd_run import demo_setlist_text
from bench.result import BenchResult, Figure
from bench.settings import number

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCES = sorted((ROOT / "assets" / "midi" / "performances").glob("*.mid"))
MINUTES_VARIABLE = "SHOWRUNNER_RECOVERY_MINUTES"  # e.g. "1,10,30" (the default)
GOAL_S = 5.0
BACK = re.compile(r"back after the show died: at ([\d.]+) s, cue (\w+), ([\d.]+) s without a show "
                  r"\(caught up (\d+) ticks in ([\d.]+) s(?: from its state at ([\d.]+) s)?\)")
STATE_EVERY_S = 30.0  # the live show's default (showrunner run --save-state-every)


def long_performance(path: Path, seconds: float) -> None:
    """A MIDI file of the bundled performances end to end, at least ``seconds`` long."""
    import mido

    beat = 480
    out = mido.MidiFile(ticks_per_beat=beat)
    track = mido.MidiTrack()
    out.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 960 ticks a second
    played, pending = 0.0, 0.0
    while played < seconds:
        for source in PERFORMANCES:
            for message in mido.MidiFile(source):
                pending += message.time
                if message.type in ("note_on", "note_off", "control_change"):
                    track.append(message.copy(time=int(round(pending * 2 * beat))))
                    played += pending
                    pending = 0.0
            pending += 1.0  # a breath between pieces
            if played >= seconds:
                break
    out.save(path)


def write_log(setlist: Path, midi: Path, seconds: float, log: Path) -> None:
    """The performance log of the piece played by ``midi`` for ``seconds``, as a live show that
    died then would have left it (no end line), and the states it saved every STATE_EVERY_S
    show seconds, from 1 s in: the last one 29 s before the death (the longest catch-up)."""
    from engine.recovery_state import StateSaver, log_identity, state_path

    from engine.audio.control import NoAudio
    from engine.cli_commands import _load_scenes, _show_header
    from engine.clock import VirtualTime
    from engine.display import open_display
    from engine.midi_file import MidiFilePerformer, load_performance
    from engine.perflog import PerformanceLog
    from engine.setlist import load_setlist
    from engine.show import Show, ShowOptions

    loaded = load_setlist(setlist)
    performance = load_performance(midi)
    audio = NoAudio()
    header = _show_header(loaded, None, None, audio, str(midi))
    header["midi_learn"] = []
    display = open_display(loaded.settings.resolution, headless=True)
    perf_log = PerformanceLog(log, header)
    try:
        show = Show(loaded, ShowOptions(duration=seconds, fps=loaded.settings.fps), VirtualTime(), display,
                    audio=audio, perf_log=perf_log)
        _load_scenes(show)
        show.add_source(MidiFilePerformer(performance, show.queue))
        show.draw_frames = False
        show.state_saver = StateSaver(state_path(log), STATE_EVERY_S, loaded.settings.tick_rate, log_identity(log))
        show.state_saver.next_tick = loaded.settings.tick_rate  # 1 s in, then every 30 s
        show.run()
        show.state_saver.join()
    finally:
        perf_log.close()
        display.close()
    lines = log.read_text(encoding="utf-8").splitlines()
    if lines and lines[-1].startswith('{"end"'):
        log.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")


def resume(setlist: Path, midi: Path, seconds: float, log: Path, work: Path) -> tuple[float, float, int]:
    """(gap seconds, catch-up seconds, ticks caught up) of ``showrunner run --resume`` (from the
    state saved beside the log, when there is one)."""
    environment = {**os.environ, "SHOWRUNNER_DIED_AT": repr(time.time())}
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(setlist), "--midi-file", str(midi), "--headless", "--no-audio",
         "--resume", str(log), "--resume-part", "2", "--duration", str(seconds + 2), "--log-dir", str(work / "logs")],
        capture_output=True, text=True, timeout=3600, env=environment)
    found = BACK.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"the resumed show failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(found.group(3)), float(found.group(5)), int(found.group(4))


def resume_standby(setlist: Path, midi: Path, seconds: float, log: Path, work: Path) -> tuple[float, float, int]:
    """The same with a standby (``--standby``): a show started as the supervisor starts its
    standby, which loads and follows the log while it waits, told to take over once it idles
    (as the supervisor tells it)."""
    import json

    logs = work / f"standby-logs-{seconds:g}"
    read, write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(setlist), "--midi-file", str(midi), "--headless", "--no-audio",
         "--duration", str(seconds + 2), "--log-dir", str(logs), "--standby-fd", str(read)],
        pass_fds=(read,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(read)
    # The live show's heartbeat at the tick it died at, and the log to follow (as the supervisor
    # says it): the standby ticks along to there while it waits.
    ticks = int(seconds * 60)
    log.with_name(log.name + ".alive").write_text(json.dumps({"tick": ticks, "seconds": seconds, "cue": "?"}))
    try:
        os.write(write, (json.dumps({"follow": str(log)}) + "\n").encode())
        deadline = time.monotonic() + 1200
        busy, still = -1.0, 0
        while still < 4:  # loaded and caught up: it has used no CPU for a second
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the standby show did not load")
            time.sleep(0.25)
            with open(f"/proc/{process.pid}/stat", encoding="ascii") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            now = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            still = still + 1 if now - busy < 0.02 else 0
            busy = now
        word = {"resume": str(log), "part": 2, "next_cue": False, "died_at": time.time()}
        os.write(write, (json.dumps(word) + "\n").encode())
    finally:
        os.close(write)
    _, err = process.communicate(timeout=3600)
    found = BACK.search(err)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"the standby show failed: {err.strip().splitlines()[-1:]}")
    return float(found.group(3)), float(found.group(5)), int(found.group(4))


def run() -> BenchResult:
    from engine.recovery_state import state_path

    text = os.environ.get(MINUTES_VARIABLE, "1,10,30")
    minutes = [float(value) for value in text.split(",") if value.strip()]
    result = BenchResult("recovery", "Recovery: a show's death to its picture back", __doc__.split("\n\n")[1],
                         f"the picture back within {GOAL_S:g} s of a death at any point of the show")
    longest = max(minutes) * 60
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as folder:
        work = Path(folder)
        setlist = work / "ldd.toml"
        setlist.write_text(demo_setlist_text(longest / 4))  # the four parts share the longest show
        midi = work / "performances.mid"
        long_performance(midi, longest + 30)
        for minute in minutes:
            seconds = minute * 60
            log = work / f"died-{minute:g}.perf.jsonl"
            write_log(setlist, midi, seconds, log)
            gap, caught_up, ticks = resume(setlist, midi, seconds, log, work)
            state = state_path(log)
            state.rename(state.with_name(state.name + ".aside"))  # the same, from the log's start
            whole_gap, whole_caught_up, whole_ticks = resume(setlist, midi, seconds, log, work)
            ready, _, _ = resume_standby(setlist, midi, seconds, log, work)
            result.figures += [
                Figure(f"death at {minute:g} min: picture back, restarted", gap, "s", f"<= {GOAL_S:g}", gap <= GOAL_S),
                Figure(f"death at {minute:g} min: picture back, --standby", ready, "s", f"<= {GOAL_S:g}",
                       ready <= GOAL_S),
                Figure(f"death at {minute:g} min: picture back, restarted from the log's start", whole_gap, "s"),
                Figure(f"death at {minute:g} min: catch-up, restarted (from the state 29 s before)", caught_up, "s"),
                Figure(f"death at {minute:g} min: catch-up, restarted from the log's start", whole_caught_up, "s"),
                Figure(f"death at {minute:g} min: catch-up speed, restarted from the log's start",
                       whole_ticks / 60 / max(whole_caught_up, 1e-9), "x"),
            ]
    result.notes.append(f"the piece's four parts over {longest / 60:g} min; headless, no sound; "
                        "the catch-up speed in show seconds per wall second")
    return result


if __name__ == "__main__":
    from rich.console import Console

    from bench.report import results_table

    Console().print(results_table([run()]))
