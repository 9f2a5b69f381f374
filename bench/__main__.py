"""Run every benchmark, print a table, and rewrite docs/benchmarks.md: ``python -m bench [NAME ...]``.

Names: tick, midi, jump, mixer, rack, sampler, soak, audio-latency, table-latency, scsynth,
granular, learners, render, ldd, recording, trainer, granolar, ear, farm, recovery (default: all). A run of only some benchmarks prints its table but leaves docs/benchmarks.md alone, so
the file always holds one complete run, unless ``--update`` asks to replace those benchmarks' figures
and sections in it (each replaced section says when it was measured). Exit status 1 when a benchmark could not run. The soak runs 5
minutes per period size; ``SHOWRUNNER_SOAK_SECONDS`` shortens it. The piece's live run (ldd) plays 4
parts of 30 s; ``SHOWRUNNER_LDD_SECONDS_PER_PART`` shortens them. The recording benchmark runs the
piece 5 x 3 times for 40 s (``SHOWRUNNER_RECORDING_SECONDS``, ``SHOWRUNNER_RECORDING_ROUNDS``) and
renders 120 s of it (``SHOWRUNNER_RECORDING_RENDER_SECONDS``; ``SHOWRUNNER_RECORDING_4K=1`` adds 4K). The trainer
benchmark runs 5 x 3 live shows of 10 s (``SHOWRUNNER_TRAINER_SECONDS``, ``SHOWRUNNER_TRAINER_ROUNDS``). The
granular benchmark measures 3 rounds of 10 s windows (``SHOWRUNNER_GRANULAR_SECONDS``,
``SHOWRUNNER_GRANULAR_ROUNDS``). The farm benchmark replays a live run of the piece of 120 s
(``SHOWRUNNER_FARM_SECONDS``) serially and on two Ray workers, twice each. The recovery benchmark
kills the piece 1, 10 and 30 minutes in (``SHOWRUNNER_RECOVERY_MINUTES``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bench import (audio_latency, audio_soak, ear, farm, granolar, granular_peers, ldd_run, learners, midi_latency, mixer_load,
                   rack_overhead, recording, recovery, render_frames, sampler_load, scene_jump, scsynth_peer, table_latency,
                   tick_overhead, trainer_frames)
from bench.machine import describe_machine
from bench.report import markdown, results_table, splice
from bench.result import BenchResult

BENCHMARKS: dict[str, tuple[str, Callable[[], BenchResult]]] = {
    "tick": ("Tick overhead of an empty scene", tick_overhead.run),
    "midi": ("MIDI arrival to scene handler through JACK", midi_latency.run),
    "jump": ("Scene jump", scene_jump.run),
    "mixer": ("Overtone mixer compute per block", mixer_load.run),
    "rack": ("Rack overhead against the pre-rack mixer", rack_overhead.run),
    "sampler": ("Sampler compute per block, 64 looped voices", sampler_load.run),
    "soak": ("Audio soak under show load", audio_soak.run),
    "audio-latency": ("MIDI note-on to first sound through JACK", audio_latency.run),
    "table-latency": ("Table written to first sample heard through JACK", table_latency.run),
    "scsynth": ("Audio process CPU against scsynth", scsynth_peer.run),
    "granular": ("Granulator CPU against pyo and scsynth", granular_peers.run),
    "learners": ("Learner step time: jax against numpy hand gradients", learners.run),
    "render": ("Frame time of the piece's kinds of scene", render_frames.run),
    "ldd": ("The piece, all four parts, live", ldd_run.run),
    "recording": ("Recording overhead and offline render speed", recording.run),
    "trainer": ("Frame time with a model training beside the show", trainer_frames.run),
    "granolar": ("The grain VAE trained and played beside a live show", granolar.run),
    "ear": ("The artificial ear listening and dreaming beside a live show", ear.run),
    "farm": ("Render farm: a chunked replay against a serial one", farm.run),
    "recovery": ("Recovery: a show's death to its picture back", recovery.run),
}
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _run_one(key: str, console: Console) -> BenchResult:
    title, run = BENCHMARKS[key]
    started = time.perf_counter()
    with console.status(f"running: {title}"):
        try:
            result = run()
        except Exception as error:  # one failing benchmark must not hide the others' figures
            logging.getLogger("bench").debug("benchmark %s failed", key, exc_info=True)
            result = BenchResult(key=key, title=title, method="", goal="",
                                 error=f"{type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - started
    state = f"[red]failed: {result.error}[/red]" if result.error else "done"
    console.print(f"{title}: {state} ({result.seconds:.1f} s)")
    return result


def _where(machine: list[tuple[str, str]], doc: str) -> str:
    """Where an update was measured: the machine the document describes, or this one's CPU and
    cores when they differ from its (sessions may run on other machines than the full run's)."""
    rows = dict(machine)
    same = all(f"| {label} | {rows[label]} |" in doc for label in ("CPU", "Cores"))
    if same:
        return "on the machine described above"
    return f"on another machine than the one described above ({rows['CPU']}, {rows['Cores']} cores)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run ({', '.join(BENCHMARKS)}); default all")
    parser.add_argument("--update", action="store_true",
                        help="replace these benchmarks' figures and sections in docs/benchmarks.md")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    machine = describe_machine()  # before the benchmarks, so the load average is the machine's own
    results = [_run_one(name, console) for name in names]
    console.print(results_table(results))
    if len(names) == len(BENCHMARKS):
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(markdown(results, machine, "python -m bench"), encoding="utf-8")
        console.print(f"wrote {DOC.relative_to(Path.cwd()) if DOC.is_relative_to(Path.cwd()) else DOC}")
    elif args.update and DOC.is_file():
        text = DOC.read_text(encoding="utf-8")
        note = (f"_Measured on {time.strftime('%Y-%m-%d')} by `python -m bench --update "
                f"{' '.join(names)}`, {_where(machine, text)}, apart from the other benchmarks' run._")
        DOC.write_text(splice(text, results, note), encoding="utf-8")
        console.print(f"updated {', '.join(names)} in {DOC.name}")
    else:
        console.print(f"(a partial run: {DOC.name} left as it was)")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
