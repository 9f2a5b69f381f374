"""``showrunner train ear --out CKPT [recordings...]``: the artificial ear (a small CPC) trained
offline with a progress bar on recordings and on piano performances rendered with a sampled piano,
saved as a checkpoint with every neuron's activation statistics and its graph's layout cached
beside it (``CKPT.layout.npz``). Saved every ``--save-every`` steps on the way (atomically); Ctrl-C
saves and stops.

Without arguments it learns the bundled recordings (cello, ocean, voice) and the first
``--piano-seconds`` of the four bundled performances (assets/midi/performances), rendered with
fluidsynth. ``--resume CKPT`` continues from a checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.errors import UserError, check_writable
from scenes.granolar.train import _positive


def build_parser() -> argparse.ArgumentParser:
    from engine.cli import _Parser

    parser = _Parser(prog="showrunner train ear", description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", nargs="*", type=Path,
                        help="audio files to learn (default: the bundled recordings)")
    parser.add_argument("--piano", nargs="*", type=Path, metavar="MIDI",
                        help="piano performances to render and learn (default: the bundled four)")
    parser.add_argument("--piano-seconds", type=_positive(float), default=120.0,
                        help="seconds of each performance (120)")
    parser.add_argument("--out", type=Path, required=True, metavar="CKPT", help="checkpoint to write")
    parser.add_argument("--steps", type=_positive(int), default=600, help="training steps (600)")
    parser.add_argument("--batch", type=_positive(int), default=8, help="4-s clips per step (8)")
    parser.add_argument("--learning-rate", type=_positive(float), default=1e-3, help="adam's (0.001)")
    parser.add_argument("--seed", type=int, default=0, help="initial state (0)")
    parser.add_argument("--resume", type=Path, metavar="CKPT", help="continue from this checkpoint")
    parser.add_argument("--save-every", type=_positive(int), default=200, help="steps between saves (200)")
    parser.add_argument("--no-layout", action="store_true", help="do not lay out the neurons' graph now")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.out.is_dir():
        raise UserError(f"--out {args.out}: is a folder; give the checkpoint's file name")
    check_writable(args.out, "checkpoint")  # now, not after the training it would hold
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.learners import checkpoint
    from engine.learners.trainer import Trainer
    from scenes.ear.data import default_performances, default_recordings, load_spectra
    from scenes.ear.learner import EarConfig, EarCpc

    recordings = args.recordings if args.recordings or args.piano is not None else default_recordings()
    performances = default_performances() if args.piano is None and not args.recordings else (args.piano or [])
    print(f"rendering and analysing {len(recordings)} recording(s) and {len(performances)} "
          f"performance(s)...", file=sys.stderr)
    spectra = load_spectra(recordings, performances, args.piano_seconds, seed=args.seed)
    learner = EarCpc(spectra, EarConfig(batch=args.batch, learning_rate=args.learning_rate))
    trainer = Trainer(learner, seed=args.seed, paced_steps_per_tick=1, name="ear")
    if args.resume is not None:
        checkpoint.load(args.resume, learner)  # a bad file is said now, before compiling
    print(f"{spectra.seconds:.0f} s of sound, {len(spectra.train_starts)} training and "
          f"{len(spectra.held_out_starts)} held-out clip starts; compiling...", file=sys.stderr)
    trainer.load()
    if args.resume is not None:
        trainer.restore(args.resume)
    done, accuracy = 0, float("nan")
    started = time.perf_counter()
    try:
        with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                      TextColumn("accuracy {task.fields[accuracy]} (held out {task.fields[held]})"),
                      TimeRemainingColumn(), transient=False) as progress:
            task = progress.add_task("ear", total=args.steps, accuracy="-", held="-")
            while done < args.steps:
                trainer.tick(done / 60)
                done += 1
                summary = trainer.latest.summary
                accuracy, held = float(summary["accuracy"]), float(summary["held_out_accuracy"])
                progress.update(task, completed=done, accuracy=f"{accuracy:.2f}", held=f"{held:.2f}")
                if done % args.save_every == 0:
                    trainer.save(args.out)
                if not progress.console.is_terminal and (done % 100 == 0 or done == args.steps):
                    progress.console.print(f"{done}/{args.steps} steps, accuracy {accuracy:.3f} "
                                           f"(held out {held:.3f})")
    except KeyboardInterrupt:
        trainer.save(args.out)
        print(f"stopped after {done} steps; saved {args.out}", file=sys.stderr)
        return 130
    trainer.save(args.out)
    print(f"{done} steps in {time.perf_counter() - started:.0f} s; accuracy {accuracy:.3f}, held out "
          f"{float(trainer.latest.summary['held_out_accuracy']):.3f} (chance about "
          f"{1 / (args.batch * 40):.3f}); saved {args.out}", file=sys.stderr)
    if not args.no_layout:
        import numpy as np

        from scenes.ear import layout

        began = time.perf_counter()
        graph = layout.neuron_graph()
        var = {k: np.asarray(v) for k, v in trainer.latest.state.var.items()}
        layout.cached_layout(args.out, graph, layout.charges(graph, var))
        print(f"laid out {len(graph)} neurons in {time.perf_counter() - began:.1f} s: "
              f"{args.out}.layout.npz", file=sys.stderr)
    return 0
