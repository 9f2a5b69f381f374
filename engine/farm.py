"""The render farm: a render or replay cut into chunks drawn at once by Ray workers.

``showrunner replay LOG --out F --workers N [--ray-address ADDR]`` (and ``render``): here, one pass
ticks the show through its whole input without drawing a frame (engine.show's ``draw_frames``): it
renders the sound, once, and saves the show's whole state (engine.snapshot) at the first frame of
each chunk. Each chunk is a Ray task: a worker loads the same setlist, restores the chunk's snapshot
and draws and encodes its frames alone (its file starts on a keyframe). Chunks start as soon as their
snapshot exists, while the pass goes on. Here again, the chunks' packets are copied into the output
one after the other (PyAV, nothing encoded again) with the pass's sound encoded beside them, into a
hidden file renamed to the output only once complete: nothing half-written is ever left as the
output. A worker that dies has its chunk run again by Ray (``max_retries``); a chunk that fails
every time ends the render with its error, the output untouched.

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


class _Progress:
    """Frames drawn, per chunk (a chunk run again starts its count again)."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}

    def set(self, chunk: int, frames: int) -> None:
        self.done[chunk] = frames

    def total(self) -> int:
        return sum(self.done.values())


def render(args: argparse.Namespace, job, log_path: Path) -> int:
    """Render ``job`` (engine.cli_commands.OfflineJob, made from ``args`` by its command) in
    ``args.workers`` chunks on Ray into ``args.out``."""
    from rich.progress import BarColumn, Progress, TextColumn

    from engine.cli_commands import console, report

    ray = _ray()
    args = _absolute(args)
    out = Path(args.out)
    frames = frame_count(job.end, job.options.fps)
    starts = boundaries(frames, args.workers)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.chunks-", dir=out.parent))
    _start_ray(ray, args)
    try:
        counter = ray.remote(_Progress).options(num_cpus=0).remote()
        task = ray.remote(render_chunk).options(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)
        worker_args = copy.copy(args)
        worker_args.metrics = worker_args.audio_out = None  # the pass writes them
        pending: dict = {}

        def submit(index: int, start: int, stop: int | None, state) -> None:
            pending[task.remote(args.command, worker_args, index, start, stop, state, counter)] = index

        stops = [*starts, None]
        submit(0, 0, stops[0], None)
        with Progress(TextColumn("rendering"), BarColumn(), TextColumn("{task.description}"),
                      console=console, transient=True) as progress:
            bar = progress.add_task("", total=frames)
            seen = {"at": 0.0, "drawn": 0}

            def show_progress(ticked: float | None) -> None:
                now = time.perf_counter()
                if now - seen["at"] < 0.25:
                    return
                seen["at"] = now
                ready, _ = ray.wait([counter.total.remote()], timeout=0.2)
                if ready:
                    seen["drawn"] = ray.get(ready[0])
                where = f"ticked {ticked:.1f} / {job.end:.1f} s, " if ticked is not None else ""
                progress.update(bar, completed=seen["drawn"],
                                description=f"{where}{seen['drawn']} / {frames} frames drawn on "
                                            f"{args.workers} workers")

            def snapshot_at(show, frame: int) -> None:
                if frame in starts:
                    from engine import snapshot

                    index = starts.index(frame) + 1
                    state = ray.put(snapshot.save(show, frame))
                    submit(index, frame, stops[index], state)

            summary, sound = _tick_through(args, job, work, snapshot_at, show_progress)
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
                    path = work / f"chunk-{index:04d}{out.suffix}"
                    path.write_bytes(result["video"])
                    chunks[index] = (path, result["first_pts"])
                    summary.frames += result["frames"]
                    summary.scene_errors += result["scene_errors"]
        config = job.setlist.settings.audio.mixer_config()
        join([chunks[index] for index in sorted(chunks)], sound, out, job.options.fps, config.sample_rate,
             config.block_size)
    finally:
        if not args.ray_address:
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    log.info("wrote %s: %d frames at %g fps in %d chunks on %d workers; %.1f s rendered in %.1f s "
             "(%.2fx real time)", out, summary.frames, job.options.fps, len(chunks), args.workers,
             summary.ticks / job.setlist.settings.tick_rate, elapsed,
             summary.ticks / job.setlist.settings.tick_rate / max(elapsed, 1e-9))
    report(summary, log_path, args.metrics)
    return 0


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


def _start_ray(ray, args: argparse.Namespace) -> None:
    if args.ray_address:
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


def _tick_through(args, job, work: Path, at_frame, show_progress):
    """The pass: the whole show ticked without drawing, its sound written to ``work``/sound.f32
    (and ``--audio-out``), ``at_frame(show, frame)`` at the top of every frame."""
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
    try:
        show = offline_show(args, job, display, audio, None)
        show.draw_frames = False
        show.before_frame = lambda frame: at_frame(show, frame)
        show.frame_sink = lambda: show_progress(show.clock.show_time)
        with _stop_on_signals(show):
            summary = show.run(performer_end=job.performer_end)
    finally:
        display.close()
        audio.close()
        raw.close()
        if wav is not None:
            wav.close()
    return summary, sound


def render_chunk(command: str, args: argparse.Namespace, index: int, start: int, stop: int | None,
                 state: bytes | None, counter) -> dict:
    """A Ray task: frames ``start`` up to ``stop`` (None: the end) of the show, drawn from its
    snapshot ``state`` (None: from the start), encoded without sound; returns the file's bytes."""
    from engine import cli_commands, snapshot
    from engine.audio.offline import OfflineAudio
    from engine.display import open_display
    from engine.recorder import Recorder

    logging.basicConfig(level=logging.WARNING)
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
        if state is not None:
            snapshot.restore(show, state)
        show.stop_at_frame = stop
        first = show.frame_index

        def report_progress() -> None:
            drawn = show.frame_index - first + 1
            if drawn % PROGRESS_EVERY == 0:
                counter.set.remote(index, drawn)

        show.frame_sink = report_progress
        summary = show.run(performer_end=job.performer_end, resume=state is not None)
        stats = recorder.close()
        if recorder.failed or stats["errors"]:
            raise RuntimeError(f"chunk {index + 1}: the video could not be written completely")
        counter.set.remote(index, stats["frames"])
        return {"video": path.read_bytes(), "frames": stats["frames"], "scene_errors": summary.scene_errors,
                "first_pts": recorder.first_pts if index > 0 else 0}
    finally:
        recorder.close()
        if display is not None:
            display.close()
        if audio is not None:
            audio.close()
        if job.sound[1] is not None:
            job.sound[1].close()
        path.unlink(missing_ok=True)


def join(chunks: list[tuple[Path, int]], sound: Path, out: Path, fps: float, sample_rate: int,
         block: int) -> None:
    """The chunks' video packets one after the other, copied, and the sound (raw float32 stereo)
    encoded beside them, into ``out``: written to a hidden file first, renamed when complete.
    ``chunks``: each chunk's file and its first frame's timestamp in frames (a container may have
    moved its timestamps to start at 0: fragmented MP4 does)."""
    import av

    from engine.encoder import MediaWriter

    partial = out.with_name(f".{out.stem}.joining{out.suffix}")
    samples = np.memmap(sound, np.float32, mode="r").reshape(-1, 2) if sound.stat().st_size else \
        np.zeros((0, 2), np.float32)
    inputs = [av.open(str(path)) for path, _ in chunks]
    try:
        template = inputs[0].streams.video[0]
        writer = MediaWriter(partial, (template.codec_context.width, template.codec_context.height), fps,
                             sample_rate, video_template=template)
        written = 0
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
                    seconds = float((packet.pts if packet.pts is not None else packet.dts) * stream.time_base)
                    until = min(len(samples), int((seconds + 1.0) * sample_rate))
                    while written < until:  # the sound a second ahead of the pictures
                        writer.audio(np.asarray(samples[written:written + block]))
                        written += len(samples[written:written + block])
                    writer.packet(packet)
            while written < len(samples):
                writer.audio(np.asarray(samples[written:written + block]))
                written += len(samples[written:written + block])
        finally:
            writer.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        for container in inputs:
            container.close()
    os.replace(partial, out)
