"""Writing frames to a video file with PyAV: H.264 in Matroska or fragmented MP4, both of which stay
playable when the writer is killed mid-show."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.errors import UserError


class VideoWriter:
    """Encode RGB frames (height, width, 3 uint8) at a constant frame rate.

    Args:
        path: output file; the container follows the suffix (.mkv recommended, .mp4 works).
        size: (width, height) in pixels, both even (H.264 with 4:2:0 chroma needs it).
        fps: frames per second.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float) -> None:
        import av

        self.path = Path(path)
        if size[0] % 2 or size[1] % 2:
            raise UserError(f"video size {size[0]}x{size[1]} must have even width and height")
        if self.path.is_dir():
            raise UserError(f"cannot write video {self.path}: it is a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.open("wb").close()  # PyAV opens the file only at the first frame: fail now
            # Fragmented MP4: what was written stays playable if the writer is killed.
            fragmented = self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
            self._container = av.open(str(self.path), mode="w",
                                      options={"movflags": "frag_keyframe+empty_moov"} if fragmented else {})
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise UserError(f"cannot write video {self.path}: {reason}") from None
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "20"}
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
