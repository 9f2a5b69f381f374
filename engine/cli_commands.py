"""What each ``showrunner`` subcommand does.

Bad input (setlist, MIDI file, cue, metrics path, output path, a MIDI port named on the command line)
is found before the window or the OpenGL context opens. SIGINT (Ctrl-C) and SIGTERM end a show the
normal way: the metrics log, the video and the show log are closed properly and the summary written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from engine.audio.control import AudioOut, NoAudio
from engine.video_in import open_source
from engine.clock import RealTime, VirtualTime
from engine.display import open_display
from engine.encoder import check_output
from engine import midi_learn
from engine.errors import UserError, check_not_an_input, check_writable
from engine.midi import EventQueue
from engine.midi_file import MidiFilePerformer, Performance, load_performance
from engine.midi_port import MidiPortInput, api_from_environment
from engine.perflog import PerformanceLog
from engine.recorded_source import RecordedSource
from engine.recorder import Recorder
from engine.setlist import LoadedSetlist, load_setlist
from engine.show import END_TAIL, Show, ShowOptions, ShowSummary
from engine.showlog import start_show_log

log = logging.getLogger("showrunner")
console = Console(stderr=True)
LONGEST_REPLAY = 7 * 86400  # seconds: a week-long installation replays; a log that says more is damaged


def _load_inputs(args: argparse.Namespace) -> tuple[LoadedSetlist, Performance | None]:
    setlist = load_setlist(args.setlist)
    if args.cue:
        setlist.index_of(args.cue)
    performance = load_performance(args.midi_file) if getattr(args, "midi_file", None) else None
    check_not_an_input(_outputs(args), {"setlist": args.setlist, "MIDI file": getattr(args, "midi_file", None)})
    if args.metrics:
        check_writable(args.metrics, "metrics log")  # unwritable: exit 2 now, not after the window opened
    args.midi_learn = midi_learn.for_setlist(setlist)  # MIDI learn: a bad learn_file exits 2 now
    return setlist, performance


def _outputs(args: argparse.Namespace) -> dict[str, Path | None]:
    """The files a command writes, by what they are."""
    names = {"metrics": "metrics log", "perf_log": "performance log", "record": "recording", "out": "output",
             "audio_out": "sound file"}
    return {what: getattr(args, name, None) for name, what in names.items()}


def _video_source(args: argparse.Namespace, setlist: LoadedSetlist, offline: bool):
    """The camera: --camera, else the setlist's [camera] source, else its fallback file (or none)."""
    camera = setlist.settings.camera
    fallback = setlist.resolve_path(camera.fallback) if camera.fallback else None
    source = getattr(args, "camera", None)
    if source is None:
        source = camera.source
        if isinstance(source, str) and not source.isdigit() and setlist.resolve_path(source).is_file():
            source = str(setlist.resolve_path(source))
    # A recording of the live camera holds its last picture; a video file standing in loops.
    return open_source(source, fallback, offline=offline, loop=not getattr(args, "camera_recorded", False))


def _piano_wanted(setting: str, live_port: bool) -> bool:
    """The additive piano plays when asked, or ("auto") when no acoustic piano is in the room:
    the performer is a MIDI file or the computer keyboard rather than a live MIDI port."""
    return setting == "on" or (setting == "auto" and not live_port)


def _sound(setlist: LoadedSetlist, piano: bool):
    """The show's rack and sample pool (None without [sound]), every audio file loaded and every
    table allocated: a bad file or a pool too small is a one-line error before anything opens."""
    from engine.audio.sound_settings import build_sound

    settings = setlist.settings
    return build_sound(setlist.path, settings.audio.mixer_config(), settings.sound, piano,
                       setlist.resolve_path)


def _input_sound(args: argparse.Namespace, setlist: LoadedSetlist):
    """The audio input of a render or replay: ``--audio-in-file`` or [sound] input_file, as
    (frames, 2) float32 at the show's rate; None when neither is given."""
    name = getattr(args, "audio_in_file", None)
    sound = setlist.settings.sound
    path = Path(name) if name else (setlist.resolve_path(sound.input_file)
                                    if sound is not None and sound.input_file else None)
    if path is None:
        return None
    import numpy as np

    from engine.audio.pool import load_audio_file

    data = load_audio_file(path, setlist.settings.audio.sample_rate)
    return np.repeat(data, 2, axis=1) if data.shape[1] == 1 else data[:, :2]


def _live_audio(args: argparse.Namespace, setlist: LoadedSetlist, midi_pattern: str | None,
                midi_api: str, log_path: Path, rack, pool, perf_path: Path, start: bool = True) -> AudioOut:
    """The live sound: made, and (``start``) its audio process started, or taken over from the
    show that died before this one (:func:`_sound_on`)."""
    settings = setlist.settings.audio
    if args.no_audio or not settings.enabled:
        log.info("sound off (%s)", "--no-audio" if args.no_audio else "[audio] enabled = false")
        return NoAudio(rack, pool)
    from engine.audio.live import LiveAudio

    from engine import supervisor

    keeper = supervisor.supervisor_pid()
    audio = LiveAudio(rack, device=args.audio_device or settings.device, midi_input=midi_pattern,
                      midi_api=midi_api, log_file=log_path, pool=pool,
                      input_device=args.audio_in or settings.input, realtime=settings.realtime,
                      keeper=keeper)
    if start:
        _sound_on(audio, args, perf_path)
    return audio


def _sound_on(audio: AudioOut, args: argparse.Namespace, perf_path: Path) -> None:
    """Start the audio process of ``audio`` (live sound), or, in a show back after dying, play on
    through the one the show that died left playing (or end that one if it cannot serve)."""
    from engine import supervisor
    from engine.audio.live import LiveAudio

    if not isinstance(audio, LiveAudio):
        return
    if audio.settings.keeper is not None:
        audio.note = supervisor.sound_note_path(perf_path)
    left = supervisor.read_sound_note(audio.note) if audio.note is not None and args.resume else {}
    if left.get("alive"):  # the show that died left its sound playing: play on through it
        why = audio.can_adopt(left)
        if why is None:
            audio.adopt(left)
            return
        log.warning("the sound the show that died left playing stops: %s", why)
    supervisor.stop_sound(left)  # and its shared files go
    audio.start()


def _check_audio_devices(output: str | None, audio_input: str | None) -> None:
    """Devices named on the command line must exist now (exit 2 listing those there are); devices
    named in a setlist are waited for instead, like MIDI ports."""
    from engine.devices import audio_devices

    found = audio_devices()
    for pattern, key, kind in ((output, "outputs", "output"), (audio_input, "inputs", "input")):
        if pattern in (None, "default"):  # the audio process takes "default" as the default device
            continue
        labels = [f"{d['name']} ({d['host_api']})" for d in found if d[key] > 0]
        if not any(pattern.lower() in label.lower() for label in labels):
            raise UserError(f"no audio {kind} matches '{pattern}'; {kind}s: {', '.join(labels) or 'none'}")


def _has_display() -> bool:
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or driver in ("offscreen", "kmsdrm"))


def _load_scenes(show: Show) -> None:
    cues = show.setlist.cues
    with Progress(TextColumn("loading scenes"), BarColumn(), TextColumn("{task.completed}/{task.total} {task.description}"),
                  console=console, transient=True) as progress:
        task = progress.add_task("", total=len(cues))
        failures = show.load(lambda done, cue_id: progress.update(task, completed=done, description=cue_id))
    for failure in failures:
        log.error("%s (this cue will show black; the show goes on)", failure)
    for failure in show.warm_up_failures:
        log.warning("%s (`showrunner check` fails on it; the cue runs live as it is)", failure)


@contextlib.contextmanager
def _stop_on_signals(show: Show) -> Iterator[list[int]]:
    """Ctrl-C or SIGTERM ends the show cleanly at the next frame; a second one stops at once."""

    received: list[int] = []  # the signals that came: an empty list, the show ended itself

    def stop(signum, _frame) -> None:
        received.append(signum)
        if show.quit_requested:
            raise KeyboardInterrupt
        log.warning("%s: ending the show (again to stop at once)", signal.Signals(signum).name)
        show.request_quit()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def report(summary: ShowSummary, log_path: Path, metrics: Path | None) -> None:
    log.info("show over: %d ticks, %d frames (median %.1f ms), %d notes, %d scene errors; cues %s",
             summary.ticks, summary.frames, summary.median_frame_ms, summary.notes,
             summary.scene_errors, " ".join(summary.cues_played) or "-")
    if summary.recompilations:
        log.warning("%d jax compilation(s) happened during the show (each one stalls a tick)",
                    summary.recompilations)
    if summary.replay_differences:
        log.warning("the replay took other cues than the live show in %d tick(s)", summary.replay_differences)
    log.info("log: %s%s", log_path, f"; metrics: {metrics}" if metrics else "")


def run(args: argparse.Namespace) -> int:
    setlist, performance = _load_inputs(args)
    settings = setlist.settings
    if args.record:
        check_output(args.record, settings.resolution)  # a bad path is found before anything opens
    if args.perf_log:
        check_writable(args.perf_log, "performance log")
    headless = args.headless
    if not headless and not _has_display():
        if args.fullscreen or args.display:
            raise UserError("--fullscreen/--display need a display and none was found (DISPLAY is unset); "
                            "use --headless to run without one")
        headless = True
    midi_pattern = args.midi_in or (settings.midi.input if performance is None else None)
    rack, pool = _sound(setlist, _piano_wanted(settings.audio.piano, midi_pattern is not None))
    try:
        return _run(args, setlist, performance, headless, midi_pattern, rack, pool)
    finally:
        if pool is not None:
            pool.close()


def _run(args: argparse.Namespace, setlist: LoadedSetlist, performance, headless: bool,
         midi_pattern: str | None, rack, pool) -> int:
    settings = setlist.settings
    log_path = start_show_log(args.log_dir)
    if headless and not args.headless:
        log.info("no display found (DISPLAY unset): running headless")
    if (args.audio_device or args.audio_in) and settings.audio.enabled and not args.no_audio:
        _check_audio_devices(args.audio_device, args.audio_in)
    clock, queue, port = RealTime(), EventQueue(), None
    api = args.midi_api or api_from_environment(settings.midi.api)
    if midi_pattern:
        port = MidiPortInput(midi_pattern, queue, clock.now, api=api)
        port.open(required=bool(args.midi_in))
    standby = None
    if getattr(args, "standby_fd", None) is not None:
        from engine.supervisor import Standby

        standby = Standby(args.standby_fd, log_path)
    try:
        # A standby opens its event ports when it takes over (OSC's listening port is one show's).
        events = _event_ports(args, setlist, clock, api) if standby is None else \
            {"osc_in": None, "osc_out": None, "midi_out": None}
    except BaseException:
        if port is not None:
            port.close()
        raise
    try:
        return _run_show(args, setlist, performance, headless, midi_pattern, rack, pool, log_path,
                         clock, queue, port, api, events, standby)
    finally:
        for opened in events.values():
            if opened is not None:
                opened.close()


def _event_ports(args: argparse.Namespace, setlist: LoadedSetlist, clock, api: str) -> dict:
    """OSC in and out and MIDI out, as the setlist and the command line say (None where unset)."""
    from engine.osc import OscInput, OscOutput, parse_address

    settings = setlist.settings
    opened: dict = {"osc_in": None, "osc_out": None, "midi_out": None}
    try:
        listen = args.osc_listen or settings.osc.listen
        if listen:
            try:
                host, port = parse_address(listen)
            except ValueError as error:
                raise UserError(f"--osc-listen: {error}") from None
            opened["osc_in"] = OscInput(host, port, clock.now)
            opened["osc_in"].start()
        sends = list(settings.osc.send) + list(args.osc_send or [])
        if sends:
            try:
                targets = [parse_address(address) for address in sends]
            except ValueError as error:
                raise UserError(f"--osc-send: {error}") from None
            opened["osc_out"] = OscOutput(targets)
        output = args.midi_out or settings.midi.output
        if output:
            from engine.midi_out import MidiPortOutput

            opened["midi_out"] = MidiPortOutput(output, api=api)
            opened["midi_out"].open(required=bool(args.midi_out))
    except BaseException:
        for port in opened.values():
            if port is not None:
                port.close()
        raise
    return opened


def _run_show(args, setlist, performance, headless, midi_pattern, rack, pool, log_path, clock, queue,
              port, api, events, standby=None) -> int:
    """The live show. ``standby`` (engine.supervisor.Standby): this show loads everything, then
    waits, unseen and unheard, for the supervisor's word that the show has died; then it takes
    over from the performance log at once (its ports, sound, recording and window too)."""
    settings = setlist.settings
    perf_path = args.resume or args.perf_log or log_path.with_suffix(".perf.jsonl")
    resumed = _resumed_log(args) if args.resume else None
    audio: AudioOut = NoAudio()
    video = recorder = perf_log = None
    try:
        video = _video_source(args, setlist, offline=False)
        audio = _live_audio(args, setlist, midi_pattern, api, log_path, rack, pool, perf_path,
                            start=standby is None)
        if standby is None:
            recorder = _live_recorder(args, settings, audio)
            performer = str(performance.path) if performance else (f"port {midi_pattern}" if port else "keyboard")
            header = _show_header(setlist, args.cue, video, audio, performer)
            header["midi_learn"] = args.midi_learn.header()  # MIDI learn: the bindings it starts with
            if video is not None and resumed is None and _record_camera(settings.camera.record,
                                                                        header["camera"]["source"]):
                video = RecordedSource(video, perf_path.with_name(perf_path.name.replace(".perf.jsonl", "") + ".camera.mkv"))
                header["camera"]["recorded"] = str(video.path.resolve())
            perf_log = PerformanceLog(perf_path, header if resumed is None else None)
            if resumed is None:  # a new log: no state an earlier show of this path saved is of use
                from engine import recovery_state
                from engine.supervisor import clear_training

                clear_training(perf_path)
                recovery_state.clear(perf_path)
        display = open_display(settings.resolution, headless=headless, fullscreen=args.fullscreen,
                               display_index=args.display, title=settings.title, hidden=standby is not None)
        try:
            show = Show(setlist, ShowOptions(start_cue=args.cue, duration=args.duration, fps=settings.fps,
                                             metrics=args.metrics, hud=args.hud,
                                             append_metrics=resumed is not None or standby is not None),
                        clock, display, queue=queue, audio=audio, video_source=video, recorder=recorder,
                        perf_log=perf_log, learn=args.midi_learn, **events)
            _load_scenes(show)
            display.shaders.watch()  # edit a shader during the show: it is recompiled at the next frame
            if performance is not None:
                show.add_source(MidiFilePerformer(performance, show.queue))
                log.info("performer: %s (%.1f s, %d notes)", performance.path.name, performance.length,
                         performance.note_count)
            elif port is not None:
                show.add_source(port)
            else:
                log.info("no MIDI input set: play the computer keyboard in the window (see README)")
            log.info("%s: %d cues, %s at %s ticks/s on %s", settings.title, len(setlist.cues),
                     "x".join(map(str, settings.resolution)), f"{settings.tick_rate:g}", display.renderer)
            if standby is not None:
                following: dict = {}
                if not standby.wait(args, lambda path: _follow(show, path, following)):
                    return 0  # the show ended well: this standby was never needed
                perf_path = args.resume
                resumed = _follow_to_end(show, perf_path, following)
                queue.clear()  # what this show's own reader caught meanwhile: the gap's MIDI is the audio process's
                events.update(_event_ports(args, setlist, clock, api))
                show.take_event_ports(**events)
                _sound_on(audio, args, perf_path)
                recorder = show.recorder = _live_recorder(args, settings, audio)
                perf_log = show.perf_log = PerformanceLog(perf_path, None)
                display.show_window()
            if recorder is not None:
                _recorder_priority(recorder, args, display)
            _wait_for_audio(audio)
            if recorder is not None:
                recorder.wait_ready()
            if os.environ.get("SHOWRUNNER_SUPERVISED"):
                from engine.supervisor import heartbeat_path, note_perf_log, training_folder

                show.heartbeat = heartbeat_path(perf_path)
                show.publish_training(training_folder(perf_path))
                if args.save_state_every > 0:
                    from engine.recovery_state import StateSaver, log_identity, state_path

                    show.state_saver = StateSaver(state_path(perf_path), args.save_state_every,
                                                  settings.tick_rate, log_identity(perf_path))
                note_perf_log(perf_path)
            if resumed is not None:
                _catch_up(show, resumed, args)
            with _stop_on_signals(show):
                summary = show.run(performer_end=performance.length if performance else None,
                                   resume=resumed is not None)
        finally:
            if recorder is not None:
                _finish_recording(recorder)
            display.close()
    except UserError:
        raise
    except Exception:
        # An internal error ends this show; under a supervisor the next one plays on through
        # this one's audio process.
        leave = getattr(audio, "leave", None)
        if leave is not None:
            leave()
        raise
    finally:
        if recorder is not None:
            recorder.close()  # a show that never ran (closed above otherwise; closing twice is fine)
        if perf_log is not None:
            perf_log.close()  # the show writes its end line; this covers a show that never ran
        audio.close()
        if video is not None:
            video.stop()  # also when the show never started
        if port is not None:
            port.close()
    report(summary, log_path, args.metrics)
    log.info("performance log: %s (showrunner replay %s --out video.mkv)", perf_path, perf_path)
    return 0


def _live_recorder(args: argparse.Namespace, settings, audio: AudioOut) -> Recorder | None:
    """The recording of a live show (--record), started (its imports overlap with loading the
    scenes); a show back after dying records into FILE-2, FILE-3..."""
    if not args.record:
        return None
    state = getattr(audio, "state", None)
    record = args.record if args.resume_part <= 1 else \
        args.record.with_name(f"{args.record.stem}-{args.resume_part}{args.record.suffix}")
    recorder = Recorder(record, settings.resolution, args.record_fps or settings.fps, live=True,
                        sample_rate=settings.audio.sample_rate if state is not None else None,
                        tap=state.path if state is not None else None)
    recorder.start()
    return recorder


def _recorder_priority(recorder: Recorder, args: argparse.Namespace, display) -> None:
    # A software rasteriser draws on every core: whatever the encoder does while the show draws
    # comes out of the show's frames. With a GPU the show leaves cores free.
    recorder.yield_to_show = args.record_priority == "show" or (
        args.record_priority == "auto" and display.software)
    log.info("recording %s", "in the show's rests between frames (the show comes first)"
             if recorder.yield_to_show else "beside the show, every frame the machine allows")


def _follow(show: Show, path: Path, following: dict) -> None:
    """A standby show: tick, muted, through what the live show has logged, up to the tick it
    last said it reached (every input of those ticks is in the log by then)."""
    from engine.learners.trainer import lower_training_priority

    show.queue.clear()  # its own reader's MIDI is the live show's to take (the log has it)
    replay, beat = _read_log(show, path, following, last=False)
    if replay is not None:
        # Its models' steps (the live show's again) on XLA's pool at idle priority, below the
        # live show's frames, as a live show's own training runs.
        lower_training_priority(19)
        show.catch_up_to(int(beat.get("tick", 0)))


def _follow_to_end(show: Show, path: Path, following: dict):
    """A standby taking over: the rest of the log, up to where the show died, as
    :func:`_resumed_log` says it."""
    replay, beat = _read_log(show, path, following, last=True)
    if replay is None:
        raise UserError(f"performance log not found or empty: {path}")
    until = max(replay.end, int(beat.get("tick", 0)))
    show.catch_up_to(until)
    return replay, until, _heard_after(beat, until, replay.header)


def _read_log(show: Show, path: Path, following: dict, last: bool):
    """(the log read so far or None, the live show's heartbeat read just before it); the
    standby's catch-up begun on the first log read. ``last``: the reader is closed after."""
    from engine import perflog
    from engine.supervisor import heartbeat_path, read_heartbeat, training_folder

    if "follower" not in following:
        following["follower"] = perflog.Follower(path)
    follower = following["follower"]
    beat = read_heartbeat(heartbeat_path(path))  # first: the log read next is at least as new
    replay = follower.read()
    if last:
        follower.close()
    if replay is not None and show._catching_up is None:
        show.training_folder = training_folder(path)
        show.begin_catch_up(replay)
    return replay, beat


def _heard_after(beat: dict, until: int, header: dict) -> float | None:
    """The instant up to which the show that died took in live MIDI (its time source, the
    system's monotonic clock)."""
    return beat["origin"] + until / header.get("tick_rate", 60) if "origin" in beat else None


def _resumed_log(args: argparse.Namespace):
    """The performance log of the show that died, read back, and where it got (the latest of its
    last input, its last heartbeat and the state it saved last)."""
    from engine import perflog
    from engine.supervisor import heartbeat_path, read_heartbeat

    from engine.recovery_state import log_identity, read_tick, state_path

    recording = perflog.load(args.resume)
    beat = read_heartbeat(heartbeat_path(args.resume))
    # Its inputs are in the log as they come, so a state it saved after its last heartbeat is a
    # tick it reached with every input before it logged (its state only: not one another show of
    # the same path left).
    state = read_tick(state_path(args.resume), log_identity(args.resume))
    until = max(recording.end, int(beat.get("tick", 0)), state[0] if state is not None else 0)
    return recording, until, _heard_after(beat, until, recording.header)


def _catch_up(show: Show, resumed, args: argparse.Namespace) -> None:
    """The restarted show ticks through the log of the one that died up to where it got, then
    says so: in the log, on the HUD, in the metrics' events."""
    from engine.recovery_state import state_path
    from engine.supervisor import DIED_AT, training_folder

    recording, until, heard_after = resumed
    show.training_folder = show.training_folder or training_folder(args.resume)
    took = show.catch_up(recording, until, next_cue=args.resume_next_cue, heard_after=heard_after,
                         state=state_path(args.resume))
    trainers = [trainer for scene in show.scenes for trainer in scene.context.trainers.values()]
    resumed_from = sum(1 for trainer in trainers if trainer.resumed)
    died = os.environ.get(DIED_AT)
    gap = time.time() - float(died) if died else float("nan")
    where = f"{until / show.clock.tick_rate:.1f} s, cue {show.playhead.current.id}"
    line = (f"back after the show died: at {where}, {gap:.2f} s without a show "
            f"(caught up {until - show.restored_at} ticks in {took:.2f} s"
            f"{f' from its state at {show.restored_at / show.clock.tick_rate:.1f} s' if show.restored_at else ''}"
            f"{f', {resumed_from} of {len(trainers)} models from their saved states' if trainers else ''})"
            f"{'; on to the next cue' if args.resume_next_cue else ''}")
    log.warning("%s", line)
    if show.hud is not None:
        show.hud.state.last_error = line
    show.recovered = {"gap_s": round(gap, 3), "caught_up_s": round(took, 3), "tick": until,
                      "from_tick": show.restored_at}


def _wait_for_audio(audio: AudioOut, timeout: float = 5.0) -> None:
    """The show starts once the audio process is ready (its imports and its device take a second
    or so; the scenes load meanwhile), so the first notes sound; never longer than ``timeout``."""
    wait = getattr(audio, "wait_started", None)
    if wait is None:
        return
    started = time.monotonic()
    status = wait(timeout)
    waited = time.monotonic() - started
    if status == "starting":
        log.warning("the audio process is not ready after %.0f s; the show starts without waiting "
                    "longer", timeout)
    elif waited > 0.05:
        log.info("waited %.1f s for the audio process (%s)", waited, status.replace("_", " "))


def _show_header(setlist: LoadedSetlist, start_cue: str | None, video, audio: AudioOut,
                 performer: str) -> dict:
    """The performance log's first line: what a replay needs besides the inputs."""
    settings = setlist.settings
    source = getattr(video, "source", None)
    if source is None:
        source = getattr(video, "path", None)
    camera = setlist.settings.camera
    return {
        "setlist": {"path": str(setlist.path.resolve()),
                    "text": setlist.path.read_text(encoding="utf-8-sig")},
        "start_cue": start_cue, "tick_rate": settings.tick_rate, "fps": settings.fps,
        "resolution": list(settings.resolution), "seed": settings.seed, "performer": performer,
        "camera": {"source": source if isinstance(source, int) or source is None else str(Path(source).resolve()),
                   "fallback": str(setlist.resolve_path(camera.fallback).resolve()) if camera.fallback else None},
        "audio": {"live": not isinstance(audio, NoAudio), "hears_midi": audio.hears_midi,
                  "piano": not isinstance(audio, NoAudio)
                  and any(spec.kind == "piano" for spec in audio.rack.instruments)},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _record_camera(setting: str, source) -> bool:
    """Whether the live camera goes into the performance log as a recording: ``auto`` records
    anything but a video file (a file is referred to by its path: live it plays by show time, as
    in a replay)."""
    if setting == "auto":
        return not (isinstance(source, str) and Path(source).is_file())
    return setting == "always"


def _finish_recording(recorder: Recorder) -> None:
    stats = recorder.close()
    seconds = stats["samples"] / recorder.sample_rate if recorder.sample_rate else 0.0
    log.info("recorded %s: %d frames%s, %.1f s of sound%s", recorder.path, stats["frames"],
             f", {recorder.dropped} dropped (the encoder was behind)" if recorder.dropped else "",
             seconds, f", {stats['resyncs']} re-anchoring(s) of the sound" if stats["resyncs"] else "")


@dataclass
class OfflineJob:
    """A render or replay made ready: what a show in virtual time needs (engine/farm.py makes one
    in every worker from the same arguments)."""

    setlist: LoadedSetlist
    size: tuple[int, int]
    options: ShowOptions
    sound: tuple  # the rack and its sample pool (:func:`_sound`)
    end: float  # show seconds
    attach: Callable[[Show], None]  # connects the performer (a MIDI file, a performance log)
    performer_end: float | None = None
    input_sound: object = None
    notes: list = field(default_factory=list)  # (level, line): said once the show log is open


def render(args: argparse.Namespace) -> int:
    return _render_job(args, prepare_render(args))


def prepare_render(args: argparse.Namespace) -> OfflineJob:
    if args.midi_file is None and args.duration is None:
        raise UserError("render: give --midi-file (a performance to play) or --duration (a setlist whose "
                        "cues play themselves, e.g. with a note source)")
    setlist, performance = _load_inputs(args)
    settings = setlist.settings
    size = args.size or settings.resolution
    check_output(args.out, size)
    if args.audio_out:
        check_writable(args.audio_out, "sound")
    piano = _piano_wanted(settings.audio.piano, live_port=False)
    options = ShowOptions(start_cue=args.cue, duration=args.duration, fps=args.fps or settings.fps,
                          metrics=args.metrics)
    end = args.duration if args.duration is not None else performance.length + END_TAIL
    heard = _input_sound(args, setlist)
    return OfflineJob(setlist, size, options, _sound(setlist, piano), end,
                      (lambda show: show.add_source(MidiFilePerformer(performance, show.queue)))
                      if performance is not None else (lambda show: None),
                      performer_end=performance.length if performance is not None else None,
                      input_sound=heard)


def _render_job(args: argparse.Namespace, job: OfflineJob) -> int:
    """Render ``job`` here, or on a Ray cluster (``--workers``, ``--ray-address``: engine/farm.py)."""
    log_path = _show_log_or_close(args, job.sound)
    for level, line in job.notes:
        log.log(level, "%s", line)
    if getattr(args, "workers", 1) > 1 or getattr(args, "ray_address", None):
        from engine import farm

        try:
            return farm.render(args, job, log_path)
        finally:
            if job.sound[1] is not None:
                job.sound[1].close()
    return _render_offline(args, log_path, job)


def _show_log_or_close(args: argparse.Namespace, sound) -> Path:
    """The show log, started; the sample pool is closed if it cannot be."""
    try:
        return start_show_log(args.log_dir)
    except BaseException:
        if sound[1] is not None:
            sound[1].close()
        raise


def replay(args: argparse.Namespace) -> int:
    return _render_job(args, prepare_replay(args))


def prepare_replay(args: argparse.Namespace) -> OfflineJob:
    from engine import perflog

    check_not_an_input(_outputs(args), {"performance log": args.log})
    recording = perflog.load(args.log)  # its values are checked: bad ones are one-line errors
    header = recording.header
    setlist = load_setlist(header["setlist"]["path"], text=header["setlist"]["text"])
    settings = setlist.settings
    tick_rate = header["tick_rate"]
    if abs(tick_rate - settings.tick_rate) > 1e-9:
        raise UserError(f"{args.log}: tick rate {tick_rate} differs from its setlist's")
    if header["start_cue"]:
        setlist.index_of(header["start_cue"])
    if args.metrics:
        check_writable(args.metrics, "metrics log")
    size = args.size or tuple(header["resolution"] or settings.resolution)
    check_output(args.out, size)
    if args.audio_out:
        check_writable(args.audio_out, "sound")
    audio_header = header["audio"]
    performer = header["performer"]
    piano = audio_header["piano"] if audio_header["live"] else \
        _piano_wanted(settings.audio.piano, live_port=performer.startswith("port"))
    seconds = recording.end / tick_rate
    if seconds > LONGEST_REPLAY:  # a garbled end (or tick) would render for years
        raise UserError(f"{args.log}: it ends at tick {recording.end} ({seconds / 86400:,.0f} days), beyond "
                        f"the longest show a replay takes ({LONGEST_REPLAY / 86400:.0f} days): a damaged log?")
    heard = _input_sound(args, setlist)
    notes = []
    if not recording.complete:
        notes.append((logging.WARNING, f"{args.log} has no end line (the show did not end normally): "
                                       f"replaying up to its last input, tick {recording.end} ({seconds:.1f} s)"))
    options = ShowOptions(start_cue=header["start_cue"], duration=max(seconds, 1 / tick_rate),
                          fps=args.fps or header["fps"] or settings.fps, metrics=args.metrics,
                          end_with_file=False)
    camera = header["camera"]
    if args.camera is None:
        recorded = _camera_recording(camera["recorded"], Path(args.log))
        if recorded is not None:
            args.camera, args.camera_recorded = str(recorded), True
            notes.append((logging.INFO, f"camera: the live camera's recording {recorded}"))
        else:
            if camera["recorded"]:
                notes.append((logging.WARNING, f"the live camera's recording {camera['recorded']} is missing "
                                               "(looked for it beside the log too); the show's camera setting "
                                               "stands in"))
            args.camera = camera["source"]
    notes.append((logging.INFO, f"replaying {args.log}: {settings.title}, {recording.end} ticks ({seconds:.1f} s) "
                                f"performed by {performer or '?'} on {header['started'] or '?'}"))
    return OfflineJob(setlist, size, options, _sound(setlist, piano), options.duration,
                      lambda show: setattr(show, "replay", recording), input_sound=heard, notes=notes)


def _camera_recording(recorded: str | None, log: Path) -> Path | None:
    """The live camera's recording named in a performance log: where the log says, or beside the
    log (a log moved with its recording, which is named after it); None if neither is there."""
    if not recorded:
        return None
    for candidate in (Path(recorded), log.parent / Path(recorded).name):
        if candidate.is_file():
            return candidate
    return None


def _render_offline(args: argparse.Namespace, log_path: Path, job: OfflineJob) -> int:
    """Render a show in virtual time into ``args.out`` (video and the rack's sound), with a
    progress bar; the job's sample pool is closed here."""
    try:
        return _render_sound(args, log_path, job)
    finally:
        if job.sound[1] is not None:
            job.sound[1].close()


def offline_show(args: argparse.Namespace, job: OfflineJob, display, audio, recorder) -> Show:
    """The show of ``job`` in virtual time, its scenes loaded and its performer attached."""
    video = _video_source(args, job.setlist, offline=True)
    show = Show(job.setlist, job.options, VirtualTime(), display, audio=audio, video_source=video,
                recorder=recorder, learn=getattr(args, "midi_learn", None))  # replay: its log's
    _load_scenes(show)
    job.attach(show)
    return show


def _render_sound(args, log_path: Path, job: OfflineJob) -> int:
    from engine.audio.offline import OfflineAudio, WavWriter

    settings = job.setlist.settings
    config = settings.audio.mixer_config()
    # Over an earlier file, the render goes to a file of its own first: the earlier one is replaced
    # only by a whole render, never by one stopped or failed halfway.
    out = Path(args.out)
    target = out.with_name(f".{out.stem}.rendering-{os.getpid()}{out.suffix}") if out.exists() else out
    recorder = Recorder(target, job.size, job.options.fps, live=False, sample_rate=config.sample_rate,
                        lossless=getattr(args, "lossless", False))
    wav = display = None
    try:
        wav = WavWriter(args.audio_out, config.sample_rate) if getattr(args, "audio_out", None) else None

        def sink(block) -> None:
            recorder.audio(block)
            if wav is not None:
                wav(block)

        audio = OfflineAudio(job.sound[0], keep=False, sink=sink, pool=job.sound[1], input_sound=job.input_sound)
        recorder.start()
        display = open_display(job.size, headless=True)
    except BaseException:
        recorder.close()
        if wav is not None:
            wav.close()
        if target != out:
            target.unlink(missing_ok=True)
        raise
    started = time.perf_counter()
    end = job.end
    whole = False
    try:
        show = offline_show(args, job, display, audio, recorder)
        with Progress(TextColumn("rendering"), BarColumn(), TextColumn("{task.description}"),
                      console=console, transient=True) as progress:
            task = progress.add_task("", total=end)

            def advance() -> None:
                done = show.clock.show_time
                rate = done / max(1e-9, time.perf_counter() - started)
                progress.update(task, completed=done,
                                description=f"{done:.1f} / {end:.1f} s ({rate:.2f}x real time)")

            show.frame_sink = advance
            with _stop_on_signals(show) as stopped:
                summary = show.run(performer_end=job.performer_end)
        whole = not stopped
    finally:
        stats = recorder.close()
        display.close()
        audio.close()
        if wav is not None:
            wav.close()
        if target != out:
            _keep_render(target, out, whole and not (recorder.failed or stats["errors"]))
    elapsed = time.perf_counter() - started
    rendered = summary.ticks / settings.tick_rate
    log.info("wrote %s: %d frames at %g fps, %.1f s of sound; %.1f s rendered in %.1f s (%.2fx real time)",
             args.out, stats["frames"], job.options.fps, stats["samples"] / config.sample_rate, rendered,
             elapsed, rendered / max(elapsed, 1e-9))
    if wav is not None:
        log.info("wrote %s", args.audio_out)
    if recorder.failed or stats["errors"]:
        raise RuntimeError(f"the video {args.out} could not be written completely (see the log)")
    report(summary, log_path, args.metrics)
    return render_status(summary)


def render_status(summary: ShowSummary) -> int:
    """A render's exit status once its file is written: 1 when a cue did not load whole (its
    scene, shown black, or its note source; the log has said which), else 0."""
    if not summary.load_failures:
        return 0
    log.error("the video is written, but %d problem(s) loading cues (a cue whose scene failed to "
              "load is black in it): %s", len(summary.load_failures), "; ".join(summary.load_failures))
    return 1


def _keep_render(target: Path, out: Path, whole: bool) -> None:
    """A render made beside an earlier ``out``: whole, it replaces it; stopped or failed, it is kept
    as OUT-STEM.partial.EXT and the earlier file stays as it was."""
    if not target.exists():
        return
    if whole:
        os.replace(target, out)
        return
    partial = out.with_name(f"{out.stem}.partial{out.suffix}")
    os.replace(target, partial)
    log.warning("the render did not finish: %s is left as it was; what was rendered is in %s", out, partial)


def plot(args: argparse.Namespace) -> int:
    from engine.plot import plot_metrics

    check_not_an_input({"plot": args.out}, {"metrics log": args.metrics})
    summary = plot_metrics(args.metrics, args.out)
    learners = ", ".join(summary["learners"]) or "none (no loss in this log)"
    print(f"wrote {args.out}: {summary['ticks']} ticks, {summary['notes']} note onsets, learners: {learners}")
    return 0


def check(args: argparse.Namespace) -> int:
    setlist = load_setlist(args.setlist)
    midi_learn.for_setlist(setlist)  # MIDI learn: the learn_file's bindings are checked too
    settings = setlist.settings
    fallback = setlist.resolve_path(settings.camera.fallback) if settings.camera.fallback else None
    if fallback is not None and not fallback.is_file():  # run and render refuse it
        raise UserError(f"{setlist.path}: camera fallback video not found: {fallback}")
    rack, pool = _sound(setlist, _piano_wanted(settings.audio.piano, live_port=False))
    display = None
    try:
        display = open_display(settings.resolution, headless=True)
        show = Show(setlist, ShowOptions(), VirtualTime(), display, audio=NoAudio(rack, pool))
        failures = show.load()
        failures += show.warm_up_failures
        shader_failures = display.shaders.compile_all()
    finally:
        if display is not None:
            display.close()
        if pool is not None:
            pool.close()
    table = Table(title=f"{settings.title} ({setlist.path})")
    for column in ("#", "cue", "scene", "advance", "transition", "loaded"):
        table.add_column(column)
    failed = {f.split("'")[1] for f in failures}
    for number, cue in enumerate(setlist.cues, start=1):
        advance = cue.cue.advance.model_dump(exclude_none=True)
        trigger = ", ".join(f"{k} {v}" for k, v in advance.items()) or "manual"
        transition = cue.cue.transition
        table.add_row(str(number), cue.id, cue.cue.scene, trigger,
                      transition.kind + (f" {transition.seconds:g}s" if transition.seconds else ""),
                      "FAILED" if cue.id in failed else "ok")
    Console().print(table)
    failures += shader_failures
    if failures:
        raise UserError(failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
    print(f"ok: {len(setlist.cues)} cues, every scene loaded, every shader in shaders/ compiled")
    return 0


def train(args: argparse.Namespace) -> int:
    """``showrunner train MODEL ...``: the module an installed piece names for MODEL (entry point
    group ``showrunner.training``) parses the rest and trains (``main(argv) -> exit code``)."""
    from engine import pieces

    return pieces.training_main(args.model)(args.arguments)


def devices(args: argparse.Namespace) -> int:
    from engine.devices import audio_devices, cameras, midi_inputs

    out = Console()
    midi = Table(title="MIDI inputs (use with --midi-in NAME)")
    midi.add_column("api")
    midi.add_column("port")
    ports = midi_inputs()
    for api, names in ports.items():
        for name in names or ["(no ports)"]:
            midi.add_row(api, name)
    if not ports:
        midi.add_row("-", "no ALSA sequencer or JACK server reachable")
    out.print(midi)
    audio = Table(title="Audio devices")
    for column in ("#", "name", "host api", "in", "out", "rate"):
        audio.add_column(column)
    found = audio_devices()
    for dev in found:
        audio.add_row(str(dev["index"]), dev["name"], dev["host_api"], str(dev["inputs"]),
                      str(dev["outputs"]), str(dev["rate"]))
    if not found:
        audio.add_row("-", "no audio devices", "", "", "", "")
    out.print(audio)
    cams = Table(title="Cameras (use with --camera)")
    cams.add_column("device")
    cams.add_column("name")
    for device, name in cameras() or [("-", "no cameras (a video file works as --camera FILE)")]:
        cams.add_row(device, name)
    out.print(cams)
    return 0
