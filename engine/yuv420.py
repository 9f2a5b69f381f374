"""The recorder's frames as yuv420p pictures made on the GL side, 1.5 bytes a pixel instead of 4.

:class:`Yuv420Pass` draws the show frame (``display.color``) through ``shaders/yuv420.frag`` into
four small targets and reads them back one after the other, so that a frame of W x H pixels (both
even) is ``W * H * 3 // 2`` bytes in four bands:

1. Y (luma) of the picture's even rows (0, 2, 4 ... counted from the top): H/2 rows of W bytes;
2. Y of its odd rows, likewise;
3. U (Cb): the picture's U plane, H/2 rows of W/2 bytes, top row first;
4. V (Cr): its V plane, likewise.

BT.601 at limited range (Y 16..235, U and V 16..240), what FFmpeg's swscale makes of RGB by
default; each U and V is the mean of its 2 x 2 block. The picture comes out upright: no flip is
left for the encoder. :func:`to_frame` (the encoder process's side) puts the bands into a
``yuv420p`` :class:`av.VideoFrame`, one copy of each byte and no colour conversion.
"""

from __future__ import annotations

import moderngl
import numpy as np

from engine.encoder import COLOR_RANGE_LIMITED, COLORSPACE_BT601


def frame_bytes(size: tuple[int, int]) -> int:
    """Bytes of one yuv420p frame of ``size`` (width, height), both even."""
    return size[0] * size[1] * 3 // 2


class Yuv420Pass:
    """Converts the show frame of ``display`` to the four bands, on the GL side.

    ``draw`` renders them; ``read_into`` reads them into a numpy array (Mesa's software
    rasteriser: the frame is finished, read it straight into its slot) or a pixel-pack buffer (a
    GPU: collected later), ``frame_bytes(display.size)`` bytes from ``offset``.
    """

    def __init__(self, display) -> None:
        self.display = display
        gl = display.gl
        width, height = display.size
        self.size = (width // 2, height // 2)  # one fragment per 2 x 2 block
        self.nbytes = frame_bytes(display.size)
        # Upper rows' luma, lower rows' luma (two bytes a block each), U, V (one byte each).
        self._targets = [gl.texture(self.size, 2), gl.texture(self.size, 2),
                         gl.texture(self.size, 1), gl.texture(self.size, 1)]
        self.fbo = gl.framebuffer(color_attachments=self._targets)
        self._bands = []  # (attachment, components, offset in the frame's bytes)
        offset = 0
        for attachment, target in enumerate(self._targets):
            self._bands.append((attachment, target.components, offset))
            offset += self.size[0] * self.size[1] * target.components
        # The frame texture filters linearly for the window; here each pixel is read as it is.
        self._sampler = gl.sampler(texture=display.color, filter=(moderngl.NEAREST, moderngl.NEAREST),
                                   repeat_x=False, repeat_y=False)
        self._program = display.shaders.program("yuv420")
        quad = gl.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4").tobytes())
        self._quad = self._program.vertex_array([(quad, "2f", "in_pos")])

    def draw(self) -> None:
        """Convert the show frame as it is now; leaves the show framebuffer bound again."""
        gl = self.display.gl
        self.fbo.use()
        gl.viewport = (0, 0, *self.size)
        gl.disable(moderngl.BLEND)
        self._sampler.use(0)
        self._program["frame"] = 0
        self._quad.render(moderngl.TRIANGLE_STRIP)
        self._sampler.clear(0)
        self.display.fbo.use()
        gl.viewport = (0, 0, *self.display.size)

    def read_into(self, target, offset: int = 0) -> None:
        """Read the bands drawn last into ``target`` (a writable buffer or a moderngl Buffer)."""
        for attachment, components, start in self._bands:
            self.fbo.read_into(target, components=components, attachment=attachment, alignment=1,
                               write_offset=offset + start)

    def release(self) -> None:
        for thing in (self.fbo, *self._targets, self._sampler):
            thing.release()


def to_frame(data: np.ndarray, size: tuple[int, int]):
    """The bands ``data`` (``frame_bytes(size)`` uint8) of a ``size`` picture as a yuv420p
    :class:`av.VideoFrame`: each byte copied once, into the frame's own memory."""
    import av

    width, height = size
    half_width, half_height = width // 2, height // 2
    frame = av.VideoFrame(width, height, "yuv420p")
    luma, blue, red = (_plane(frame, i) for i in range(3))
    rows = half_height * width
    luma[0::2] = data[:rows].reshape(half_height, width)
    luma[1::2] = data[rows:2 * rows].reshape(half_height, width)
    chroma = half_height * half_width
    blue[:] = data[2 * rows:2 * rows + chroma].reshape(half_height, half_width)
    red[:] = data[2 * rows + chroma:2 * rows + 2 * chroma].reshape(half_height, half_width)
    frame.color_range = COLOR_RANGE_LIMITED
    frame.colorspace = COLORSPACE_BT601
    return frame


def _plane(frame, index: int) -> np.ndarray:
    """A writable (height, width) view of one plane of ``frame`` (its rows may be padded)."""
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[:plane.height, :plane.width]
