"""``showrunner train vae --out CKPT [recordings...]``: the grain VAE trained offline, with a
progress bar, saved as a checkpoint (and every ``--save-every`` steps on the way, atomically, so an
interrupted run keeps what it learned; Ctrl-C saves and stops).

Without recordings it learns the bundled ones (assets/audio/grains: voice, cello, drum,
vibraphone). ``--resume CKPT`` continues from a checkpoint.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from engine.errors import UserError, check_writable

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "audio" / "grains"
DEFAULT_RECORDINGS = [ASSETS / name for name in (
    "smstools_singing-female.wav", "smstools_cello-phrase.wav", "smstools_mridangam.wav",
    "smstools_vibraphone-C6.wav")]


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a number above 0, got '{text}'")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    from engine.cli import _Parser

    parser = _Parser(prog="showrunner train vae", description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", nargs="*", type=Path,
                        help="audio files to learn (default: the bundled recordings)")
    parser.add_argument("--out", type=Path, required=True, metavar="CKPT", help="checkpoint to write")
    parser.add_argument("--steps", type=_positive(int), default=1000, help="training steps (1000)")
    parser.add_argument("--batch", type=_positive(int), default=16, help="grains per step (16)")
    parser.add_argument("--beta", type=_positive(float), default=0.5, help="the KL term's weight (0.5)")
    parser.add_argument("--learning-rate", type=_positive(float), default=2e-3, help="adam's (0.002)")
    parser.add_argument("--rate", type=_positive(int), default=48000, help="the show's sample rate (48000)")
    parser.add_argument("--seed", type=int, default=0, help="initial state and held-out grains (0)")
    parser.add_argument("--resume", type=Path, metavar="CKPT", help="continue from this checkpoint")
    parser.add_argument("--save-every", type=_positive(int), default=200, help="steps between saves (200)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.out.is_dir():
        raise UserError(f"--out {args.out}: is a folder; give the checkpoint's file name")
    check_writable(args.out, "checkpoint")  # now, not after the training it would hold
    import jax
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.learners import checkpoint
    from engine.learners.trainer import Trainer
    from scenes.granolar.data import load_grains
    from scenes.granolar.learner import GrainVae, VaeConfig

    grains = load_grains(args.recordings or DEFAULT_RECORDINGS, args.rate, seed=args.seed)
    learner = GrainVae(grains, VaeConfig(batch=args.batch, beta=args.beta,
                                         learning_rate=args.learning_rate))
    trainer = Trainer(learner, seed=args.seed, paced_steps_per_tick=1, name="vae")
    if args.resume is not None:
        checkpoint.load(args.resume, learner)  # a bad file is said now, before compiling
    print(f"{len(grains.train)} training grains, {len(grains.held_out)} held out, from "
          f"{len(grains.sources)} recording(s); compiling...", file=sys.stderr)
    trainer.load()
    if args.resume is not None:
        trainer.restore(args.resume)
    evaluate = jax.jit(learner.held_out_error)
    done, error = 0, float("nan")
    started = time.perf_counter()
    try:
        with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                      TextColumn("held-out error {task.fields[error]}"), TimeRemainingColumn(),
                      transient=False) as progress:
            task = progress.add_task("vae", total=args.steps, error="-")
            while done < args.steps:
                trainer.tick(done / 60)
                done += 1
                if done % 50 == 0 or done == args.steps:
                    state = trainer.latest.state
                    error = float(evaluate(state.params, state.stats))
                    progress.update(task, error=f"{error:.3f}")
                if done % args.save_every == 0:
                    trainer.save(args.out)
                if not progress.console.is_terminal and (done % 100 == 0 or done == args.steps):
                    progress.console.print(f"{done}/{args.steps} steps, held-out error {error:.3f}")
                progress.update(task, completed=done)
    except KeyboardInterrupt:
        trainer.save(args.out)
        print(f"stopped after {done} steps; saved {args.out}", file=sys.stderr)
        return 130
    trainer.save(args.out)
    print(f"{done} steps in {time.perf_counter() - started:.0f} s; held-out error {error:.3f} of the "
          f"held-out power; saved {args.out}", file=sys.stderr)
    return 0
