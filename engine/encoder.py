"""Writing the show to a media file with PyAV: H.264 video (yuv420p, plays everywhere) and AAC
stereo audio, in Matroska (.mkv) or fragmented MP4 (.mp4, .mov, .m4v).

Both containers stay playable when the writer dies: Matroska clusters are closed every second and
the file is flushed with them; fragmented MP4 writes a fragment at every keyframe, one a second.
Frames and audio carry their own timestamps (show time), so a frame the recorder had to drop is a
gap the player fills by holding the previous picture, and audio stays where it belongs.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.errors import UserError, check_writable

FRAGMENTED = (".mp4", ".mov", ".m4v")
CONTAINERS = (".mkv", *FRAGMENTED)
AAC_PRIMING = 1024  # samples FFmpeg's AAC encoder puts before the sound
# What the pictures are, as FFmpeg numbers them (AVColorRange, AVColorSpace): the conversion of
# RGB to yuv420p (yuv420, like swscale's default) is BT.601 at limited range (Y 16..235, U and V
# 16..240).
COLOR_RANGE_LIMITED = 1  # AVCOL_RANGE_MPEG, "tv"
COLORSPACE_BT601 = 6  # AVCOL_SPC_SMPTE170M
LIMITED_CHROMA = 224 / 255  # chroma's excursion at limited range over full range


def check_output(path: Path, size: tuple[int, int] | None) -> None:
    """Bad output paths and sizes are bad input: a one-line :class:`UserError`, before any work."""
    if path.is_dir():
        raise UserError(f"cannot write video {path}: it is a folder")
    if path.suffix.lower() not in CONTAINERS:
        raise UserError(f"cannot write video {path}: use a .mkv or .mp4 file "
                        f"(both stay playable if the show is killed)")
    if size is not None and (size[0] % 2 or size[1] % 2):
        raise UserError(f"video size {size[0]}x{size[1]} must have even width and height")
    check_writable(path, "video")


def yuv420(pixels: np.ndarray, bottom_up: bool = False):
    """An RGB or RGBA picture, (height, width, 3 or 4) uint8 and contiguous, as an upright yuv420p
    :class:`av.VideoFrame` of its own, BT.601 at limited range like swscale's default; ``bottom_up``:
    its rows come bottom first, as OpenGL reads them back (a frame slot in shared memory, read
    where it sits: its 4 bytes a pixel are never copied).

    OpenCV converts, vectorised: 1.7-1.9 ms a 1280x720 frame of the demo on the 2-core test
    machine, against 2.6 ms for swscale on one thread. Its own I420 conversion gives the luma; it
    would take each 2x2 block's colour from one of its four pixels (a one-pixel line's colour would
    depend on the rows it falls on), so the chroma comes from the picture halved by averaging, as
    full-range YCrCb scaled to limited range. Only the planes, 1.5 bytes a pixel, are copied into
    the frame, flipped when need be (row pairs map onto row pairs, so flipping the planes equals
    flipping the picture)."""
    import av
    import cv2

    height, width, channels = pixels.shape
    rgba = channels == 4
    luma = cv2.cvtColor(pixels, cv2.COLOR_RGBA2YUV_I420 if rgba else cv2.COLOR_RGB2YUV_I420)[:height]
    half = cv2.resize(pixels, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    ycrcb = cv2.cvtColor(cv2.cvtColor(half, cv2.COLOR_RGBA2RGB) if rgba else half, cv2.COLOR_RGB2YCrCb)
    limited = cv2.addWeighted(ycrcb, LIMITED_CHROMA, ycrcb, 0, 128 * (1 - LIMITED_CHROMA))
    frame = av.VideoFrame(width, height, "yuv420p")
    for index, plane in enumerate((luma, limited[..., 2], limited[..., 1])):  # Y, U (Cb), V (Cr)
        _plane(frame, index)[:] = plane[::-1] if bottom_up else plane
    return frame


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
        lossless: offline, encode every picture exactly (x264 at qp 0: the decoded planes are
            the yuv420p conversion of the frames, bit for bit; files several times larger, in a
            profile, High 4:4:4 Predictive, that hardware decoders may lack).
        absolute: keep the first frame's timestamp (a chunk of a longer render, engine/farm.py);
            else the first frame is shown from 0.
        bframes: let the encoder use B-frames (offline). Off for a render farm's chunks: a
            stream whose decoding order is its display order joins onto the next one as it is.
        video_template: instead of encoding pictures, copy the packets of this PyAV video stream
            (:meth:`packet`): a render farm's chunks joined without encoding them again.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float,
                 sample_rate: int | None = 48000, live: bool = False, lossless: bool = False,
                 absolute: bool = False, bframes: bool = True, video_template=None,
                 audio_template=None) -> None:
        """``size`` None (and no ``video_template``): a file of sound alone. ``video_template`` /
        ``audio_template``: a stream of another file whose packets :meth:`packet` /
        :meth:`audio_packet` copy in, encoding nothing."""
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
        self.absolute = absolute
        self._copying = video_template is not None
        if video_template is not None:
            self._video = self._container.add_stream_from_template(video_template)
        elif size is not None:
            self._video = self._video_stream(size, live, lossless, fragmented or not bframes)
        else:
            self._video = None
        self._audio = None
        self._copying_audio = audio_template is not None
        self.sample_rate = sample_rate
        if audio_template is not None:
            self._audio = self._container.add_stream_from_template(audio_template)
        elif sample_rate:
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

    def _video_stream(self, size: tuple[int, int], live: bool, lossless: bool, no_bframes: bool):
        video = self._container.add_stream("libx264", rate=self.rate)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = 1 / self.rate
        # Say so in the stream: untagged, players guess BT.709 for HD sizes and shift the colours.
        video.codec_context.color_range = COLOR_RANGE_LIMITED
        video.codec_context.colorspace = COLORSPACE_BT601
        gop = max(1, round(float(self.rate)))  # a keyframe a second: the most a crash can lose
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23", "g": str(gop)} if live \
            else {"preset": "veryfast", "qp": "0", "g": str(gop)} if lossless \
            else {"preset": "veryfast", "crf": "18", "g": str(gop)}
        if no_bframes:
            # Without an edit list (fragmented MP4 has none), B-frames' decode delay would show as
            # a frame of offset between picture and sound.
            video.options = {**video.options, "bf": "0"}
        return video

    def packet(self, packet) -> None:
        """Copy one packet of the template's stream (``video_template``) into the file."""
        packet.stream = self._video
        self._container.mux(packet)
        self.frames += 1

    def audio_packet(self, packet) -> None:
        """Copy one packet of ``audio_template``'s stream into the file."""
        packet.stream = self._audio
        self._container.mux(packet)

    def video(self, picture, pts: int) -> bool:
        """Encode one frame shown from ``pts`` / fps seconds: a (height, width, 3 or 4) uint8
        RGB(A) array, top row first, or an :class:`av.VideoFrame` (see :func:`yuv420`).
        A pts at or before the last one is skipped (returns False)."""
        import av

        if pts <= self.last_pts:
            return False
        if self.frames == 0 and not self.absolute:
            pts = 0  # the first picture also covers the moment before it (the show starts black)
        if isinstance(picture, av.VideoFrame):
            frame = picture
        else:
            frame = yuv420(np.ascontiguousarray(picture))
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
            if self._video is not None and not self._copying:
                self._mux(self._video.encode())
            if self._audio is not None and not self._copying_audio:
                self._mux(self._audio.encode())
        finally:
            self._container.close()
