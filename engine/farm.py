"""The render farm: a render or replay cut into chunks drawn at once by Ray workers.

``showrunner replay LOG --out F --workers N [--ray-address ADDR]`` (and ``render``): here, one pass
ticks the show through its whole input without drawing a frame (engine.show's ``draw_frames``): it
renders the sound, once, and saves the show's whole state (engine.snapshot) at the first frame of
each chunk. Each chunk is a Ray task: a worker loads the same setlist, restores the chunk's snapshot
and draws and encodes its frames alone (its file starts on a keyframe). Every chunk's task starts at
once: its worker loads the show while the pass goes on, and draws as soon as its snapshot exists.
Here again, the chunks' packets are copied into the output one after the other (PyAV, nothing
encoded again) with the pass's sound beside them (encoded by a thread as the pass writes it, so that
no encoding is left for the end), into a hidden file renamed to the output only once complete:
nothing half-written is ever left as the output. A worker that dies has its chunk run again by Ray
(``max_retries``); a chunk that fails every time ends the render with its error, the output
untouched. The show log says when the pass ended and when each chunk's steps did.

Ray is optional (``pip install 'showrunner[farm]'``); without ``--ray-address`` a local Ray is
started for the job and stopped after it. On a cluster every worker needs the project and the
setlist's files at the same paths (one checkout on a shared file system, or the same image); the
chunks travel back through Ray's object store, so the output is written where the command runs.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.errors import UserError

log = logging.getLogger("showrunner.farm")

RETRIES = 3  # a chunk whose worker dies is run again this many times
PROGRESS_EVERY = 10  # frames between a worker's progress reports
SNAPSHOT_POLL = 0.05  # s between a waiting worker's asks for its snapshot
SOUND_READ = 1 << 20  # bytes of raw sound the encoder thread takes at a time


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--workers and --ray-address need Ray: pip install 'showrunner[farm]'") from None
    return ray


def frame_count(end: float, fps: float) -> int:
    """Frames a render of ``end`` show seconds draws: frames 1..K of the show's loop (frame 0 runs
    before the first tick and draws nothing)."""
    return max(1, math.ceil(end * fps - 1e-9))


def boundaries(frames: int, chunks: int) -> list[int]:
    """The first frame of each chunk after the first (which starts the show at frame 0)."""
    chunks = max(1, min(chunks, frames))
    return sorted({max(1, round(index * frames / chunks)) + 1 for index in range(1, chunks)})


class _Board:
    """What the driver and the workers share: frames drawn, per chunk (a chunk run again starts its
    count again), and the chunks' snapshots as the pass makes them (each a one-item list holding its
    object reference, so that Ray passes the reference on and not the bytes)."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}
        self.states: dict[int, list] = {}

    def set(self, chunk: int, frames: int) -> None:
        self.done[chunk] = frames

    def total(self) -> int:
        return sum(self.done.values())

    def offer(self, chunk: int, state: list) -> None:
        self.states[chunk] = state

    def state(self, chunk: int) -> list | None:
        return self.states.get(chunk)


def render(args: argparse.Namespace, job, log_path: Path) -> int:
    """Render ``job`` (engine.cli_commands.OfflineJob, made from ``args`` by its command) in
    ``args.workers`` chunks on Ray into ``args.out``."""
    from rich.progress import BarColumn, Progress, TextColumn

    from engine.cli_commands import console, render_status, report

    ray = _ray()
    args = _absolute(args)
    out = Path(args.out)
    frames = frame_count(job.end, job.options.fps)
    starts = boundaries(frames, args.workers)
    started = time.perf_counter()
    started_wall = time.time()
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.chunks-", dir=out.parent))
    pending: dict = {}
    encoder = None  # the sound's, once the pass has run
    _start_ray(ray, args)
    try:
        board = ray.remote(_Board).options(num_cpus=0).remote()
        task = ray.remote(render_chunk).options(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)
        worker_args = copy.copy(args)
        worker_args.metrics = worker_args.audio_out = None  # the pass writes them

        # Every chunk's task starts at once: a worker loads the show (imports, scenes, compiling)
        # while the pass runs, then waits for its snapshot.
        stops = [*starts, None]
        kept: list = []
        for index, start in enumerate([0, *starts]):
            pending[task.remote(args.command, worker_args, index, start, stops[index], board)] = index
        with Progress(TextColumn("rendering"), BarColumn(), TextColumn("{task.description}"),
                      console=console, transient=True) as progress:
            bar = progress.add_task("", total=frames)
            seen = {"at": 0.0, "drawn": 0, "asked": None}

            def show_progress(ticked: float | None) -> None:
                # Never waits: the pass is the farm's critical path. The count asked for last time
                # is read if it has come, and asked for again.
                now = time.perf_counter()
                if now - seen["at"] < 0.25:
                    return
                seen["at"] = now
                if seen["asked"] is not None:
                    ready, _ = ray.wait([seen["asked"]], timeout=0)
                    if not ready:
                        return
                    seen["drawn"] = ray.get(ready[0])
                seen["asked"] = board.total.remote()
                where = f"ticked {ticked:.1f} / {job.end:.1f} s, " if ticked is not None else ""
                progress.update(bar, completed=seen["drawn"],
                                description=f"{where}{seen['drawn']} / {frames} frames drawn on "
                                            f"{args.workers} workers")

            def snapshot_at(show, frame: int) -> None:
                if frame in starts:
                    from engine import snapshot

                    kept.append(ray.put(snapshot.save(show, frame)))  # owned here until the end
                    board.offer.remote(starts.index(frame) + 1, [kept[-1]])

            summary, encoder = _tick_through(args, job, work, snapshot_at, show_progress)
            log.info("the pass (sound and snapshots) ended %.1f s after the start", time.time() - started_wall)
            chunks: dict[int, Path] = {}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
                show_progress(None)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as error:  # a chunk that failed every try
                        raise RuntimeError(f"chunk {index + 1} of {len(stops)} failed: "
                                           f"{_cause(error)}") from None
                    log.info("chunk %d of %d, s from the start: %s", index + 1, len(stops), ", ".join(
                        f"{name} {at - started_wall:.1f}" for name, at in result["marks"].items()))
                    path = work / f"chunk-{index:04d}{out.suffix}"
                    path.write_bytes(result["video"])
                    chunks[index] = (path, result["first_pts"])
                    summary.frames += result["frames"]
                    summary.scene_errors += result["scene_errors"]
                    # A worker on another machine may fail to load what loaded here (a file only here).
                    summary.load_failures += [f"{failure} (on the worker of chunk {index + 1})"
                                              for failure in result["load_failures"]
                                              if failure not in summary.load_failures]
        sound_file = encoder.finish()
        log.info("every chunk drawn and the sound encoded %.1f s after the start; joining",
                 time.time() - started_wall)
        join([chunks[index] for index in sorted(chunks)], sound_file, out, job.options.fps)
    finally:
        if encoder is not None:
            encoder.abandon()  # nothing after finish()
        for ref in pending:  # after a failure: nothing left waiting for a snapshot on a cluster
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already ended, or Ray already going down
                pass
        if not args.ray_address:
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    log.info("wrote %s: %d frames at %g fps in %d chunks on %d workers; %.1f s rendered in %.1f s "
             "(%.2fx real time)", out, summary.frames, job.options.fps, len(chunks), args.workers,
             summary.ticks / job.setlist.settings.tick_rate, elapsed,
             summary.ticks / job.setlist.settings.tick_rate / max(elapsed, 1e-9))
    report(summary, log_path, args.metrics)
    return render_status(summary)


def _cause(error: BaseException) -> str:
    cause = getattr(error, "cause", None)
    text = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(error).__name__}: {error}"
    return text.strip().splitlines()[-1] if text.strip() else type(error).__name__


def _absolute(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments with every path absolute (a worker may start elsewhere)."""
    args = copy.copy(args)
    for name, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, name, value.absolute())
    if getattr(args, "setlist", None) is not None:
        args.setlist = Path(args.setlist).absolute()
    return args


def unreachable(address: str, timeout: float = 3.0) -> str | None:
    """Why a Ray cluster's ``host:port`` (or ``ray://host:port``) takes no connection now, or None
    (also for ``auto`` and the forms Ray resolves itself). Ray's own connect retries for many
    minutes before it gives up."""
    import socket

    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__


def _start_ray(ray, args: argparse.Namespace) -> None:
    if args.ray_address:
        problem = unreachable(args.ray_address)
        if problem is not None:
            raise UserError(f"cannot reach the Ray cluster at {args.ray_address}: {problem}")
        try:
            ray.init(address=args.ray_address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise UserError(f"cannot reach the Ray cluster at {args.ray_address}: {error}") from None
        return
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, runtime_env={"env_vars": _environment()})


def _environment() -> dict[str, str]:
    """What a local worker needs of this process's environment (its display, jax's settings)."""
    keys = ("PYOPENGL_PLATFORM", "SDL_VIDEODRIVER", "EGL_PLATFORM", "JAX_PLATFORMS", "XLA_FLAGS",
            "LIBGL_ALWAYS_SOFTWARE", "GALLIUM_DRIVER", "MESA_LOADER_DRIVER_OVERRIDE", "DISPLAY")
    return {key: os.environ[key] for key in keys if key in os.environ}


class _SoundEncoder:
    """The pass's sound (raw float32 stereo, written to ``raw`` as the pass goes) encoded into a
    file of sound alone, ``path`` (the output's container and codec, so its packets are copied into
    the output as they are), by a thread that follows the raw file: the encoding runs beside the
    pass and the drawing instead of after them, and the sound never waits in memory."""

    def __init__(self, raw: Path, path: Path, fps: float, sample_rate: int) -> None:
        import threading

        from engine.encoder import MediaWriter

        self.raw, self.path = raw, path
        self._writer = MediaWriter(path, None, fps, sample_rate)
        self._ended = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._follow, name="farm-sound", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            with open(self.raw, "rb") as file:
                while True:
                    ended = self._ended.is_set()  # read before the last look at the file
                    data = file.read(SOUND_READ)
                    whole = len(data) - len(data) % 8  # stereo float32 frames only
                    if whole < len(data):
                        file.seek(whole - len(data), os.SEEK_CUR)
                    if whole:
                        self._writer.audio(np.frombuffer(data[:whole], np.float32).reshape(-1, 2))
                    elif ended:
                        return
                    else:
                        time.sleep(0.05)
        except BaseException as error:  # said by finish(), in the render's thread
            self._error = error

    def finish(self) -> Path:
        """Wait for the rest of the sound (the raw file is complete) and close the file."""
        self._ended.set()
        self._thread.join()
        self._closed = True
        self._writer.close()
        if self._error is not None:
            raise RuntimeError(f"the sound could not be encoded: {self._error}") from self._error
        return self.path

    def abandon(self) -> None:
        """Stop, after a failure elsewhere (nothing, once finished)."""
        if self._closed:
            return
        self._closed = True
        self._ended.set()
        self._thread.join(timeout=5.0)
        try:
            self._writer.close()
        except Exception:  # already failing: the render's own error is the one to say
            pass


def _tick_through(args, job, work: Path, at_frame, show_progress):
    """The pass: the whole show ticked without drawing, its sound written to ``work``/sound.f32
    (and ``--audio-out``) and encoded beside it (the returned :class:`_SoundEncoder`, still
    running), ``at_frame(show, frame)`` at the top of every frame."""
    from engine.audio.offline import OfflineAudio, WavWriter
    from engine.cli_commands import _stop_on_signals, offline_show
    from engine.display import open_display

    config = job.setlist.settings.audio.mixer_config()
    sound = work / "sound.f32"
    raw = open(sound, "wb")
    wav = WavWriter(args.audio_out, config.sample_rate) if getattr(args, "audio_out", None) else None

    def sink(block) -> None:
        raw.write(np.ascontiguousarray(block, np.float32).tobytes())
        if wav is not None:
            wav(block)

    audio = OfflineAudio(job.sound[0], keep=False, sink=sink, pool=job.sound[1], input_sound=job.input_sound)
    # A display as the workers have one: the scenes load the same resources (a snapshot refers to
    # them by where they are), but nothing is drawn.
    display = open_display(job.size, headless=True)
    encoder = _SoundEncoder(sound, work / f"sound{Path(args.out).suffix}", job.options.fps, config.sample_rate)
    try:
        show = offline_show(args, job, display, audio, None)
        show.draw_frames = False
        show.before_frame = lambda frame: at_frame(show, frame)
        show.frame_sink = lambda: show_progress(show.clock.show_time)
        with _stop_on_signals(show):
            summary = show.run(performer_end=job.performer_end)
    except BaseException:
        encoder.abandon()
        raise
    finally:
        display.close()
        audio.close()
        raw.close()
        if wav is not None:
            wav.close()
    return summary, encoder


def _snapshot_for(board, index: int) -> bytes:
    """Chunk ``index``'s snapshot, once the pass has made it."""
    ray = _ray()
    while (state := ray.get(board.state.remote(index))) is None:
        time.sleep(SNAPSHOT_POLL)
    return ray.get(state[0])


def render_chunk(command: str, args: argparse.Namespace, index: int, start: int, stop: int | None,
                 board) -> dict:
    """A Ray task: frames ``start`` up to ``stop`` (None: the end) of the show, drawn from its
    snapshot (chunk 0: from the start; the others wait for the pass to make theirs, once the show
    is loaded), encoded without sound; returns the file's bytes."""
    from engine import cli_commands, snapshot
    from engine.audio.offline import OfflineAudio
    from engine.display import open_display
    from engine.recorder import Recorder

    logging.basicConfig(level=logging.WARNING)
    marks = {"task began": time.time()}  # when each step ended, for the render's log
    job = {"render": cli_commands.prepare_render, "replay": cli_commands.prepare_replay}[command](args)
    job.options = replace(job.options, metrics=None)
    handle, name = tempfile.mkstemp(prefix=f"showrunner-chunk-{index:04d}-", suffix=Path(args.out).suffix)
    os.close(handle)
    path = Path(name)
    recorder = Recorder(path, job.size, job.options.fps, live=False, sample_rate=None,
                        lossless=getattr(args, "lossless", False), absolute=index > 0, bframes=False)
    display = audio = None
    try:
        audio = OfflineAudio(job.sound[0], keep=False, pool=job.sound[1], input_sound=job.input_sound)
        recorder.start()
        display = open_display(job.size, headless=True)
        show = cli_commands.offline_show(args, job, display, audio, recorder)
        marks["show loaded"] = time.time()
        state = _snapshot_for(board, index) if index > 0 else None
        marks["snapshot came"] = time.time()
        if state is not None:
            snapshot.restore(show, state)
        show.stop_at_frame = stop
        first = show.frame_index

        def report_progress() -> None:
            drawn = show.frame_index - first + 1
            if drawn % PROGRESS_EVERY == 0:
                board.set.remote(index, drawn)

        show.frame_sink = report_progress
        summary = show.run(performer_end=job.performer_end, resume=state is not None)
        marks["drawn"] = time.time()
        stats = recorder.close()
        marks["file closed"] = time.time()
        if recorder.failed or stats["errors"]:
            raise RuntimeError(f"chunk {index + 1}: the video could not be written completely")
        board.set.remote(index, stats["frames"])
        return {"video": path.read_bytes(), "frames": stats["frames"], "scene_errors": summary.scene_errors,
                "load_failures": list(summary.load_failures),
                "first_pts": recorder.first_pts if index > 0 else 0, "marks": marks}
    finally:
        recorder.close()
        if display is not None:
            display.close()
        if audio is not None:
            audio.close()
        if job.sound[1] is not None:
            job.sound[1].close()
        path.unlink(missing_ok=True)


def join(chunks: list[tuple[Path, int]], sound: Path, out: Path, fps: float) -> None:
    """The chunks' video packets one after the other and the packets of ``sound`` (a file of sound
    alone, see :class:`_SoundEncoder`) beside them, all copied, into ``out``: written to a hidden
    file first, renamed when complete. ``chunks``: each chunk's file and its first frame's timestamp
    in frames (a container may have moved its timestamps to start at 0: fragmented MP4 does)."""
    import av

    from engine.encoder import MediaWriter

    partial = out.with_name(f".{out.stem}.joining{out.suffix}")
    inputs = [av.open(str(path)) for path, _ in chunks]
    sound_input = av.open(str(sound))
    try:
        template = inputs[0].streams.video[0]
        sound_stream = sound_input.streams.audio[0]
        writer = MediaWriter(partial, (template.codec_context.width, template.codec_context.height), fps,
                             None, video_template=template, audio_template=sound_stream)
        sound_packets = (packet for packet in sound_input.demux(sound_stream)
                         if packet.dts is not None or packet.pts is not None)  # not the end marker
        waiting = next(sound_packets, None)

        def sound_until(seconds: float | None):
            nonlocal waiting
            while waiting is not None and (seconds is None or _seconds(waiting) < seconds):
                writer.audio_packet(waiting)
                waiting = next(sound_packets, None)

        try:
            for container, (_, first_pts) in zip(inputs, chunks):
                stream = container.streams.video[0]
                shift = None
                for packet in container.demux(stream):
                    if packet.dts is None and packet.pts is None:  # the demuxer's end-of-stream marker
                        continue
                    if shift is None:
                        shift = round(first_pts / fps / stream.time_base) - packet.pts
                    packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += shift
                    sound_until(_seconds(packet) + 1.0)  # the sound a second ahead of the pictures
                    writer.packet(packet)
            sound_until(None)
        finally:
            writer.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        for container in [*inputs, sound_input]:
            container.close()
    os.replace(partial, out)


def _seconds(packet) -> float:
    return float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
