"""Writing the show to a media file with PyAV: H.264 video (yuv420p, plays everywhere) and AAC
stereo audio, in Matroska (.mkv) or fragmented MP4 (.mp4, .mov, .m4v).

Both containers stay playable when the writer dies: Matroska clusters are closed every second and
the file is flushed with them; fragmented MP4 writes a fragment at every keyframe, one a second.
Frames and audio carry their own timestamps (show time), so a frame the recorder had to drop is a
gap the player fills by holding the previous picture, and audio stays where it belongs.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.errors import UserError

FRAGMENTED = (".mp4", ".mov", ".m4v")
CONTAINERS = (".mkv", *FRAGMENTED)
AAC_PRIMING = 1024  # samples FFmpeg's AAC encoder puts before the sound
# What the pictures are, as FFmpeg numbers them (AVColorRange, AVColorSpace): swscale's default
# conversion of RGB to yuv420p is BT.601 at limited range (Y 16..235, U and V 16..240).
COLOR_RANGE_LIMITED = 1  # AVCOL_RANGE_MPEG, "tv"
COLORSPACE_BT601 = 6  # AVCOL_SPC_SMPTE170M
# swscale on one thread: beside the show on a 2-core machine, more threads cost more CPU time than
# they save (the live encoder process: 0.45-0.49 cores instead of 0.52-0.58 on the piece).
SWSCALE_THREADS = 1


def check_output(path: Path, size: tuple[int, int]) -> None:
    """Bad output paths and sizes are bad input: a one-line :class:`UserError`, before any work."""
    if path.is_dir():
        raise UserError(f"cannot write video {path}: it is a folder")
    if path.suffix.lower() not in CONTAINERS:
        raise UserError(f"cannot write video {path}: use a .mkv or .mp4 file "
                        f"(both stay playable if the show is killed)")
    if size[0] % 2 or size[1] % 2:
        raise UserError(f"video size {size[0]}x{size[1]} must have even width and height")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():  # checked without emptying it: a later bad input must not cost a recording
            if not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied")
        else:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".showrunner-check-"):
                pass
    except OSError as error:
        raise UserError(f"cannot write video {path}: {error.strerror or error}") from None


def yuv420_from_gl(pixels: np.ndarray):
    """An RGBA frame as OpenGL reads it back, (height, width, 4) uint8 bottom row first, as an
    upright yuv420p :class:`av.VideoFrame` of its own. swscale reads the pixels where they are (a
    frame slot in shared memory: the 4 bytes a pixel are never copied, which is what costs, more
    than the conversion), then the planes it made, 1.5 bytes a pixel, are copied upside down."""
    import av

    converted = av.VideoFrame.from_numpy_buffer(pixels, format="rgba").reformat(format="yuv420p",
                                                                                 threads=SWSCALE_THREADS)
    height, width = pixels.shape[:2]
    upright = av.VideoFrame(width, height, "yuv420p")
    for index in range(3):
        _plane(upright, index)[:] = _plane(converted, index)[::-1]
    return upright


def _plane(frame, index: int) -> np.ndarray:
    """A writable (height, width) view of one plane of ``frame`` (its rows may be padded)."""
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:plane.height, :plane.width]


class MediaWriter:
    """Encode show frames and sound into one file.

    Args:
        path: output file (.mkv or .mp4); checked with :func:`check_output` first.
        size: (width, height), both even.
        fps: nominal frame rate; frame timestamps are in units of 1/fps.
        sample_rate: audio rate, or None for a file without sound.
        live: tune for live recording (no lookahead or B-frames, the fastest preset: a killed
            writer loses at most the frames of the current second); else higher quality for
            offline renders.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float,
                 sample_rate: int | None = 48000, live: bool = False) -> None:
        import av

        self.path = Path(path)
        check_output(self.path, size)
        self.size = size
        fragmented = self.path.suffix.lower() in FRAGMENTED
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                   "avoid_negative_ts": "make_non_negative"} if fragmented else {"cluster_time_limit": "1000"}
        options["flush_packets"] = "1"  # what the muxer has finished goes to the file at once
        try:
            self._container = av.open(str(self.path), mode="w", options=options)
        except (OSError, ValueError) as error:
            raise UserError(f"cannot write video {self.path}: {getattr(error, 'strerror', None) or error}") from None
        self.rate = Fraction(fps).limit_denominator(1001)
        video = self._container.add_stream("libx264", rate=self.rate)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = 1 / self.rate
        # Say so in the stream: untagged, players guess BT.709 for HD sizes and shift the colours.
        video.codec_context.color_range = COLOR_RANGE_LIMITED
        video.codec_context.colorspace = COLORSPACE_BT601
        gop = max(1, round(float(self.rate)))  # a keyframe a second: the most a crash can lose
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23", "g": str(gop)} if live \
            else {"preset": "veryfast", "crf": "18", "g": str(gop)}
        if fragmented:
            # Without an edit list (fragmented MP4 has none), B-frames' decode delay would show as
            # a frame of offset between picture and sound.
            video.options = {**video.options, "bf": "0"}
        self._video = video
        self._audio = None
        self.sample_rate = sample_rate
        if sample_rate:
            audio = self._container.add_stream("aac", rate=sample_rate)
            audio.layout = "stereo"
            audio.codec_context.time_base = Fraction(1, sample_rate)
            audio.bit_rate = 192_000
            self._audio = audio
        self.frames = 0  # video frames written
        self.samples = 0  # audio frames (sample pairs) written, including silence filled in
        # AAC starts with 1024 samples of encoder priming. Matroska marks them to be skipped;
        # fragmented MP4 has no edit list to say so, and players would start the sound 21 ms
        # late. There the sound's first 1024 samples (show start, silent) are left out instead.
        self._lead = AAC_PRIMING if fragmented else 0
        self.last_pts = -1
        self._closed = False

    def video(self, picture, pts: int) -> bool:
        """Encode one frame shown from ``pts`` / fps seconds: a (height, width, 3 or 4) uint8
        RGB(A) array, top row first, or an :class:`av.VideoFrame` (see :func:`yuv420_from_gl`).
        A pts at or before the last one is skipped (returns False)."""
        import av

        if pts <= self.last_pts:
            return False
        if self.frames == 0:
            pts = 0  # the first picture also covers the moment before it (the show starts black)
        if isinstance(picture, av.VideoFrame):
            frame = picture
        else:
            layout = "rgba" if picture.shape[2] == 4 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format=layout).reformat(
                format="yuv420p", threads=SWSCALE_THREADS)
        frame.pts = pts
        frame.time_base = self._video.codec_context.time_base
        self.last_pts = pts
        self._mux(self._video.encode(frame))
        self.frames += 1
        return True

    def audio(self, block: np.ndarray, start: int | None = None) -> None:
        """Encode (N, 2) float32 sound starting at sample ``start`` (None: right after the last
        block). A gap is filled with silence; samples before the last written are dropped."""
        if self._audio is None or len(block) == 0:
            return
        if start is None:
            start = self.samples
        if start > self.samples:
            self._audio_frame(np.zeros((start - self.samples, 2), np.float32))
        elif start < self.samples:
            block = block[self.samples - start:]
            if len(block) == 0:
                return
        self._audio_frame(block)

    def _audio_frame(self, block: np.ndarray) -> None:
        import av

        start = self.samples
        self.samples += len(block)
        if start < self._lead:
            block = block[self._lead - start:]
            start = self._lead
            if len(block) == 0:
                return
        planar = np.ascontiguousarray(np.clip(block, -1.0, 1.0).T.astype(np.float32))
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
        frame.sample_rate = self.sample_rate
        frame.pts = start - self._lead
        frame.time_base = self._audio.codec_context.time_base
        self._mux(self._audio.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and finish the file (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._mux(self._video.encode())
            if self._audio is not None:
                self._mux(self._audio.encode())
        finally:
            self._container.close()
