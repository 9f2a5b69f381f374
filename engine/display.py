"""Where frames go: a pygame window (OpenGL 3.3 core) or a headless EGL context, one code path.

Every frame is drawn into an offscreen framebuffer at the show's resolution; a window then presents
it letterboxed to whatever size the window or projector has, so what is recorded and what tests read
back is exactly what the audience sees.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable

import moderngl
import numpy as np

from engine.errors import UserError
from engine.shaders import ShaderLibrary

log = logging.getLogger("showrunner.display")

# A full-screen quad (two triangles over in_pos in [-1, 1]) with uv in [0, 1]; reused by benchmarks.
FULLSCREEN_VERT = """
#version 330
in vec2 in_pos;
out vec2 uv;
void main() { uv = in_pos * 0.5 + 0.5; gl_Position = vec4(in_pos, 0.0, 1.0); }
"""
_PRESENT_FRAG = """
#version 330
uniform sampler2D frame;
in vec2 uv;
out vec4 color;
void main() { color = vec4(texture(frame, uv).rgb, 1.0); }
"""


_SHADE_FRAG = """
#version 330
uniform float alpha;
in vec2 uv;
out vec4 color;
void main() { color = vec4(0.0, 0.0, 0.0, alpha); }
"""


class Display:
    """An OpenGL context plus the show framebuffer. Use :func:`open_display` to make one.

    Attributes:
        gl: the moderngl context.
        size: show resolution (width, height) in pixels.
        fbo: the framebuffer scenes draw into.
        windowed: True for a pygame window.
        on_swap_wait: called with True before the window's buffer swap, which with a GPU may
            wait for the screen's vertical blank, and with False after it (the show rests
            meanwhile). Not called on a software rasteriser, where the swap is CPU work: the
            frame's last drawing is done then, and the copy to the window.
    """

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def show_window(self) -> None:
        """Show a window opened hidden (its GL context and everything made in it stay)."""
        if not self.windowed:
            return
        import pygame
        from pygame._sdl2.video import Window

        # pygame (2.6.1) hangs this wrapper on the SDL window as its "pg_window" data without
        # holding a reference, and each window event looks it up: once the wrapper is freed, the
        # next pygame.event.get() segfaults (a standby that took over died so). It is kept for as
        # long as the window lives.
        self._window = Window.from_display_module()
        self._window.show()
        pygame.event.pump()
        log.info("window %s", "shown" if pygame.display.get_active() else "shown, but not yet mapped by the display")

    def __init__(self, gl: moderngl.Context, size: tuple[int, int], windowed: bool) -> None:
        self.gl = gl
        self.size = size
        self.windowed = windowed
        self.color = gl.texture(size, 4)
        self.fbo = gl.framebuffer(color_attachments=[self.color])
        self.shaders = ShaderLibrary(gl)
        self._present = gl.program(vertex_shader=FULLSCREEN_VERT, fragment_shader=_PRESENT_FRAG)
        quad = gl.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4").tobytes())
        self._quad = gl.vertex_array(self._present, [(quad, "2f", "in_pos")])
        self._shade = gl.program(vertex_shader=FULLSCREEN_VERT, fragment_shader=_SHADE_FRAG)
        self._shade_quad = gl.vertex_array(self._shade, [(quad, "2f", "in_pos")])
        self.fade = 1.0  # 0 = black, 1 = full image (transitions)
        self.on_swap_wait: Callable[[bool], None] | None = None
        self._window = None  # pygame's wrapper of a window shown after it was opened hidden
        self.renderer = gl.info.get("GL_RENDERER", "?")
        # GPU time per frame from GL timer queries: two, alternating, so reading the previous
        # frame's result never waits for the current one.
        # Mesa's software rasterisers answer timer queries with garbage (1 ns for a frame, or
        # 2^32 - 1): there the CPU frame time is the whole story, and gpu_ms stays None.
        software = any(name in self.renderer.lower() for name in ("llvmpipe", "softpipe", "swrast"))
        self.software = software  # the frame is finished when drawing returns (readback: no PBOs)
        try:
            self._queries = [] if software else [gl.query(time=True), gl.query(time=True)]
        except Exception:  # no timer queries on this driver: gpu_ms stays None
            self._queries = []
        self._frame = 0
        self._query_open = False
        self.gpu_ms: float | None = None  # GPU time of the previous frame, milliseconds
        self.gpu_timing = bool(self._queries)

    def begin_frame(self) -> None:
        if self._queries and not self._query_open:
            self._queries[self._frame % 2].__enter__()
            self._query_open = True
        self.fbo.use()
        self.gl.viewport = (0, 0, *self.size)
        self.gl.clear(0.0, 0.0, 0.0, 1.0)

    def end_frame(self, overlay: Callable[[], None] | None = None,
                  capture: Callable[[], None] | None = None) -> None:
        """Apply the transition fade, call ``capture`` (the recorder: what it reads is the show
        without the performer's HUD), draw ``overlay`` (the HUD) over it, and present (windowed)."""
        if self.fade < 1.0:
            self._fade_to_black(1.0 - self.fade)
        if capture is not None:
            self.fbo.use()
            capture()
        if overlay is not None:
            self.fbo.use()
            self.gl.viewport = (0, 0, *self.size)
            overlay()
        if self._query_open:
            self._queries[self._frame % 2].__exit__(None, None, None)
            self._query_open = False
            if self._frame > 0:
                elapsed = self._queries[(self._frame - 1) % 2].elapsed
                self.gpu_ms = elapsed / 1e6 if 0 < elapsed < 0xFFFFFFFF else None
            self._frame += 1
        if self.windowed:
            self._present_to_window()
        else:
            # Headless there is no buffer swap to flush the frame: without this, Mesa queues
            # frame after frame and the next sync point (a readback, a fade's copy) pays for all.
            self.gl.finish()

    def warm_up(self) -> None:
        """Run the fade and present paths once, unseen, so their first real use does not stall."""
        self.begin_frame()
        self._fade_to_black(0.5)
        if self.windowed:
            self._present_to_window()
        self.gl.finish()

    def _fade_to_black(self, amount: float) -> None:
        # Blend black over the frame: one full-screen pass, no copy of the frame.
        self.fbo.use()
        self.gl.viewport = (0, 0, *self.size)
        self.gl.enable(moderngl.BLEND)
        self.gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self._shade["alpha"].value = min(1.0, max(0.0, amount))
        self._shade_quad.render(moderngl.TRIANGLE_STRIP)
        self.gl.disable(moderngl.BLEND)

    def _present_to_window(self) -> None:
        import pygame

        screen = self.gl.screen
        width, height = pygame.display.get_window_size()
        screen.use()
        self.gl.viewport = (0, 0, width, height)
        self.gl.clear(0.0, 0.0, 0.0, 1.0)
        scale = min(width / self.size[0], height / self.size[1])
        w, h = int(self.size[0] * scale), int(self.size[1] * scale)
        self.gl.viewport = ((width - w) // 2, (height - h) // 2, w, h)
        self.color.use(0)
        self._quad.render(moderngl.TRIANGLE_STRIP)
        report = None if self.software else self.on_swap_wait
        if report is not None:
            report(True)
        try:
            pygame.display.flip()
        finally:
            if report is not None:
                report(False)

    def read_pixels(self) -> np.ndarray:
        """The show frame as an (height, width, 3) uint8 array, top row first."""
        data = self.fbo.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.size[1], self.size[0], 3)[::-1]

    def read_window(self) -> np.ndarray:
        """What the window shows, as (height, width, 3) uint8, top row first (windowed only)."""
        import pygame

        width, height = pygame.display.get_window_size()
        data = self.gl.screen.read(viewport=(0, 0, width, height), components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)[::-1]

    def poll_events(self) -> list:
        if not self.windowed:
            return []
        import pygame

        return pygame.event.get()

    def set_caption(self, text: str) -> None:
        if self.windowed:
            import pygame

            pygame.display.set_caption(text)

    def close(self) -> None:
        self.shaders.close()
        if self.windowed:
            import pygame

            pygame.display.quit()
            self._window = None  # the window is gone: no event will look its wrapper up
        else:
            self.gl.release()


def open_display(size: tuple[int, int], headless: bool, fullscreen: bool = False,
                 display_index: int = 0, title: str = "showrunner", hidden: bool = False) -> Display:
    """Open the window (or headless EGL context) and its show framebuffer. ``hidden``: the window
    is made but not shown until :meth:`Display.show_window` (a standby show, engine.supervisor).

    Raises :class:`UserError` when no OpenGL 3.3 context can be had (no display, no EGL).
    """
    if headless:
        try:
            gl = moderngl.create_standalone_context(backend="egl", require=330)
        except Exception as error:  # moderngl raises plain Exception for missing EGL
            raise UserError(f"cannot create a headless OpenGL 3.3 context through EGL: {error} "
                            "(install libegl1 libegl-mesa0 libgl1-mesa-dri)") from None
        return Display(gl, size, windowed=False)

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    pygame.display.init()
    pygame.font.init()
    pygame.display.gl_set_attribute(pygame.GL_CONTEXT_MAJOR_VERSION, 3)
    pygame.display.gl_set_attribute(pygame.GL_CONTEXT_MINOR_VERSION, 3)
    pygame.display.gl_set_attribute(pygame.GL_CONTEXT_PROFILE_MASK, pygame.GL_CONTEXT_PROFILE_CORE)
    displays = pygame.display.get_num_displays()
    if display_index >= displays:
        pygame.display.quit()
        raise UserError(f"--display {display_index}: only {displays} display(s) found (0..{displays - 1})")
    flags = pygame.OPENGL | pygame.DOUBLEBUF
    if hidden:
        flags |= pygame.HIDDEN
    if fullscreen:
        flags |= pygame.FULLSCREEN
        window_size = pygame.display.get_desktop_sizes()[display_index]
    else:
        flags |= pygame.RESIZABLE
        window_size = size
    try:
        with warnings.catch_warnings():  # no vsync (Xvfb, some drivers): pace by sleeping instead
            warnings.simplefilter("ignore")
            pygame.display.set_mode(window_size, flags, display=display_index, vsync=1)
    except pygame.error:
        try:
            pygame.display.set_mode(window_size, flags, display=display_index)
        except pygame.error as error:
            pygame.display.quit()
            raise UserError(f"cannot open an OpenGL 3.3 window: {error} (try --headless)") from None
    pygame.display.set_caption(title)
    # Wrap whatever context SDL made current (GLX on X11, EGL offscreen or on Wayland): moderngl's
    # default loader resolves through it, where create_context() would assume GLX after the first.
    moderngl.init_context()
    gl = moderngl.get_context()
    if gl.version_code < 330:
        pygame.display.quit()
        raise UserError(f"the window's OpenGL is version {gl.version_code}, 3.3 is needed (try --headless)")
    log.info("window %sx%s on display %s (%s)", *window_size, display_index, gl.info.get("GL_RENDERER"))
    return Display(gl, size, windowed=True)
