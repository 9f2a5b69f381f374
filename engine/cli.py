"""The ``showrunner`` command: run, check, render, replay, plot, devices.

Exit codes: 0 success; 2 bad input (setlist, MIDI file, arguments, a device named explicitly but
missing) with one line on stderr and no traceback; 1 internal error (details in the show's log).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from engine.errors import UserError

log = logging.getLogger("showrunner.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage otherwise)
        self.exit(2, f"showrunner: error: {message} (see '{self.prog} --help')\n"
                  if " " in self.prog else f"showrunner: error: {message}\n")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got '{text}'") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"size {text} out of range 16..8192")
    return width, height


def _number_between(low: float, high: float, unit: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
        if not low <= value <= high:  # also rejects nan and inf
            raise argparse.ArgumentTypeError(f"expected {low:g} to {high:g} {unit}, got {text}")
        return value
    return parse


_duration = _number_between(0.001, 24 * 3600, "seconds")
_state_every = _number_between(0, 24 * 3600, "seconds")
_fps = _number_between(1, 240, "frames per second")


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers, got '{text}'") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"expected 1 to 1024 workers, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="showrunner", description="Run a live audiovisual show from a setlist.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="perform a setlist live")
    run.add_argument("setlist", type=Path)
    run.add_argument("--cue", help="cue id to start at (rehearsal)")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--midi-in", metavar="NAME", help="MIDI input port: case-insensitive name substring")
    source.add_argument("--midi-file", metavar="FILE", type=Path, help="play a Standard MIDI File as the performer")
    run.add_argument("--midi-api", choices=["auto", "alsa", "jack"], help="MIDI system for --midi-in and --midi-out")
    run.add_argument("--midi-out", metavar="NAME",
                     help="MIDI output port (name substring): what scenes emit goes there")
    run.add_argument("--osc-listen", metavar="[HOST:]PORT",
                     help="take OSC on this port (loopback unless a host is given); see docs/osc.md")
    run.add_argument("--osc-send", metavar="[HOST:]PORT", action="append",
                     help="send what happens (cues, losses, notes, emitted events) as OSC there; repeatable")
    run.add_argument("--camera", metavar="SOURCE", help="camera index, name or video file")
    run.add_argument("--hud", action="store_true", help="show the rehearsal HUD from the start (F1 toggles it)")
    run.add_argument("--record", metavar="FILE", type=Path, help="record the show (video + audio)")
    run.add_argument("--record-fps", type=_fps, metavar="N",
                     help="frames per second recorded (default: the show's; fewer cost the show less)")
    run.add_argument("--record-priority", choices=["auto", "show", "recording"], default="auto",
                     help="show: the encoder works while the show rests between frames and drops "
                          "recorded frames when that is too short; recording: it also works while the "
                          "show draws, recording more frames and slowing the show's; auto (default): "
                          "show with a software renderer (it draws on every core), else recording")
    run.add_argument("--audio-device", metavar="NAME", help="audio output: device name substring")
    run.add_argument("--audio-in", metavar="NAME",
                     help="audio input to record with the show: name substring or 'default'")
    run.add_argument("--no-audio", action="store_true", help="no sound (the audio process is not started)")
    screen = run.add_mutually_exclusive_group()
    screen.add_argument("--fullscreen", action="store_true", help="full screen on --display")
    screen.add_argument("--headless", action="store_true", help="no window: render offscreen (EGL)")
    run.add_argument("--display", type=int, default=0, metavar="N", help="display index for the window")
    run.add_argument("--duration", type=_duration, metavar="SECONDS", help="stop after this many seconds")
    run.add_argument("--metrics", metavar="FILE", type=Path, help="write a JSON Lines metrics log")
    run.add_argument("--log-dir", type=Path, default=Path("logs"), help="folder for the show log")
    run.add_argument("--no-recover", action="store_true",
                     help="run the show in this process, not restarted if it dies (docs/recovery.md)")
    # Set by the supervisor (engine/supervisor.py) when it starts a show that died again.
    run.add_argument("--resume", type=Path, help=argparse.SUPPRESS)
    run.add_argument("--resume-part", type=int, default=1, help=argparse.SUPPRESS)
    run.add_argument("--resume-next-cue", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--standby-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument("--standby", action="store_true",
                     help="recovery: keep a second copy of the show loaded and waiting, so that a show "
                          "that dies is back in well under a second plus its catch-up (costs the "
                          "show's memory twice, and its loading once more after it goes live)")
    run.add_argument("--save-state-every", type=_state_every, default=30.0, metavar="SECONDS",
                     help="recovery: save the show's whole state beside its performance log this often "
                          "(show seconds; 0: never), so that a show back after dying catches up from "
                          "there, not from the start (default 30)")
    run.add_argument("--perf-log", metavar="FILE", type=Path,
                     help="performance log for 'showrunner replay' (default: beside the show log)")

    check = commands.add_parser("check", help="validate a setlist and load every scene")
    check.add_argument("setlist", type=Path)

    render = commands.add_parser("render", help="render a setlist offline from a MIDI file")
    render.add_argument("setlist", type=Path)
    render.add_argument("--midi-file", metavar="FILE", type=Path,
                        help="the performance to play (without one, --duration: the cues play themselves)")
    render.add_argument("--out", metavar="FILE", type=Path, required=True,
                        help="video file to write (.mkv or .mp4), with sound")
    render.add_argument("--cue", help="cue id to start at")
    render.add_argument("--duration", type=_duration, metavar="SECONDS")
    render.add_argument("--size", type=_size, metavar="WxH", help="frame size (default: the setlist's)")
    render.add_argument("--fps", type=_fps, default=None, help="frames per second (default: the setlist's)")
    render.add_argument("--camera", metavar="SOURCE")
    render.add_argument("--audio-out", metavar="FILE.wav", type=Path,
                        help="also write the rack's sound as a 16-bit WAV file")
    render.add_argument("--audio-in-file", metavar="FILE", type=Path,
                        help="the show's audio input: a recording standing in for the microphone "
                             "(default: [sound] input_file)")
    render.add_argument("--metrics", metavar="FILE", type=Path)
    render.add_argument("--log-dir", type=Path, default=Path("logs"))

    replay = commands.add_parser("replay", help="render a live show again from its performance log")
    replay.add_argument("log", type=Path, help="the performance log (logs/show-*.perf.jsonl)")
    replay.add_argument("--out", metavar="FILE", type=Path, required=True,
                        help="video file to write (.mkv or .mp4), with sound")
    replay.add_argument("--size", type=_size, metavar="WxH", help="frame size (default: the show's)")
    replay.add_argument("--fps", type=_fps, default=None, help="frames per second (default: the show's)")
    replay.add_argument("--camera", metavar="SOURCE", help="video file instead of the show's camera")
    replay.add_argument("--metrics", metavar="FILE", type=Path)
    replay.add_argument("--audio-out", metavar="FILE.wav", type=Path,
                        help="also write the sound as a 16-bit WAV file")
    replay.add_argument("--audio-in-file", metavar="FILE", type=Path,
                        help="the show's audio input (default: [sound] input_file)")
    replay.add_argument("--log-dir", type=Path, default=Path("logs"))
    for command in (render, replay):
        farm = command.add_argument_group("render farm (docs/recording.md; needs showrunner[farm])")
        farm.add_argument("--workers", type=_workers, default=1, metavar="N",
                          help="render in N chunks at once on Ray workers (default 1: here, serially)")
        farm.add_argument("--ray-address", metavar="ADDR",
                          help="a running Ray cluster to render on (default: a local one for the job)")
        command.add_argument("--lossless", action="store_true",
                             help="encode every frame exactly (x264 at qp 0: large files, for archiving "
                                  "and comparing)")

    plot = commands.add_parser("plot", help="plot the loss over a show from its metrics log")
    plot.add_argument("metrics", type=Path, help="a metrics log (--metrics of run, render, replay)")
    plot.add_argument("--out", metavar="FILE.png", type=Path, required=True,
                      help="the picture: .png, .svg or .pdf")

    commands.add_parser("devices", help="list MIDI ports, audio devices and cameras")

    train = commands.add_parser("train", help="train a piece's model offline and save a checkpoint",
                                add_help=False)
    train.add_argument("model", help="what to train: a model an installed piece brings (e.g. vae)")
    train.add_argument("arguments", nargs=argparse.REMAINDER,
                       help="the model's own arguments ('showrunner train MODEL --help')")
    return parser


def train_help() -> str:
    """``showrunner train --help``: the usage and the models the installed pieces can train."""
    from engine import pieces

    models = sorted(pieces.installed_training())
    return ("usage: showrunner train MODEL [ARGUMENTS ...]\n\n"
            "Train a piece's model offline and save a checkpoint.\n\n"
            f"models: {', '.join(models) or 'none (no installed piece brings one)'}\n"
            "a model's own arguments: showrunner train MODEL --help\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"] and argv[1:2] in (["-h"], ["--help"]):
        print(train_help(), end="")
        return 0
    args = build_parser().parse_args(argv)
    if args.command == "run" and not args.no_recover and args.resume is None and args.standby_fd is None:
        from engine import supervisor

        if not os.environ.get(supervisor.SUPERVISED):
            return supervisor.supervise(argv)
    from engine import cli_commands as commands

    handler = {"run": commands.run, "check": commands.check, "render": commands.render,
               "replay": commands.replay, "plot": commands.plot, "devices": commands.devices,
               "train": commands.train}[args.command]
    try:
        return handler(args)
    except UserError as error:
        print(f"showrunner: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("showrunner: stopped", file=sys.stderr)
        return 130
    except Exception as error:  # internal: one line for people, the traceback for the log
        logger = logging.getLogger("showrunner")
        if logger.handlers:  # a show log is open (run, render); check and devices have none
            logger.debug("internal error", exc_info=True)
            hint = "details in the show log"
        else:
            hint = "set SHOWRUNNER_DEBUG=1 for the traceback"
        print(f"showrunner: internal error: {type(error).__name__}: {error} ({hint})", file=sys.stderr)
        if os.environ.get("SHOWRUNNER_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
