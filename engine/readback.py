"""Reading finished frames back on a thread of their own, for Mesa's software rasteriser.

On a GPU a ring of pixel-pack buffers makes the readback asynchronous: the GPU copies the frame
while the show goes on. llvmpipe has no such engine: its ``glReadPixels`` is a copy of the frame
by the CPU, done in the calling thread (about 0.3 ms for a 1280x720 frame on a 2-core machine, a
tenth of a light scene's frame). :class:`BackgroundReader` does that copy on a thread of its own,
in an EGL context that shares the show's textures, and calls ``glReadPixels`` through ctypes,
which lets go of Python's lock for the length of the copy: the show's thread only hands over the
texture and the destination.

The caller keeps the order: the frame must be finished (``glFinish``) before :meth:`start`, and
nothing may draw into the texture again until :meth:`wait` has returned.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
from ctypes import CFUNCTYPE, POINTER, byref, c_char_p, c_int, c_uint, c_void_p

import numpy as np

log = logging.getLogger("showrunner.readback")

_EGL_NONE = 0x3038
_EGL_CONFIG_ID = 0x3028
_EGL_OPENGL_API = 0x30A2
_EGL_CONTEXT_MAJOR_VERSION = 0x3098
_EGL_CONTEXT_MINOR_VERSION = 0x30FB
_EGL_CONTEXT_OPENGL_PROFILE_MASK = 0x30FD
_EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT = 0x1
_GL_READ_FRAMEBUFFER = 0x8CA8
_GL_COLOR_ATTACHMENT0 = 0x8CE0
_GL_TEXTURE_2D = 0x0DE1
_GL_FRAMEBUFFER_COMPLETE = 0x8CD5
_GL_PACK_ALIGNMENT = 0x0D05
_GL_RGBA = 0x1908
_GL_UNSIGNED_BYTE = 0x1401
_GL_NO_ERROR = 0


def _egl() -> ctypes.CDLL:
    egl = ctypes.CDLL("libEGL.so.1")
    for name in ("eglGetCurrentDisplay", "eglGetCurrentContext", "eglCreateContext", "eglGetProcAddress"):
        getattr(egl, name).restype = c_void_p
    egl.eglGetProcAddress.argtypes = [c_char_p]
    egl.eglQueryContext.argtypes = [c_void_p, c_void_p, c_int, POINTER(c_int)]
    egl.eglChooseConfig.argtypes = [c_void_p, POINTER(c_int), POINTER(c_void_p), c_int, POINTER(c_int)]
    egl.eglCreateContext.argtypes = [c_void_p, c_void_p, c_void_p, POINTER(c_int)]
    egl.eglMakeCurrent.argtypes = [c_void_p, c_void_p, c_void_p, c_void_p]
    egl.eglDestroyContext.argtypes = [c_void_p, c_void_p]
    egl.eglBindAPI.argtypes = [c_uint]
    return egl


class BackgroundReader:
    """A thread with its own OpenGL context, sharing the textures of the context current in the
    thread that made it, that reads RGBA textures into numpy arrays. Make it with
    :meth:`for_current_context`."""

    def __init__(self, egl: ctypes.CDLL, display: int, share: int) -> None:
        self._egl = egl
        self._display = display
        self._share = share
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = False
        self._thread = threading.Thread(target=self._run, name="frame-readback", daemon=True)
        self._thread.start()
        error = self._done.get()  # the thread's context is made, or why not
        if error is not None:
            self._thread.join()
            raise RuntimeError(error)

    @classmethod
    def for_current_context(cls) -> BackgroundReader | None:
        """A reader for the EGL context current in this thread, or None (no EGL context is current:
        a GLX window; or no shared context can be made), with the reason in the debug log."""
        try:
            egl = _egl()
            display, share = egl.eglGetCurrentDisplay(), egl.eglGetCurrentContext()
            if not display or not share:
                log.debug("no EGL context is current: frames are read back on the show's thread")
                return None
            return cls(egl, display, share)
        except (OSError, RuntimeError, AttributeError) as error:
            log.debug("no background readback (%s): frames are read back on the show's thread", error)
            return None

    def start(self, texture: int, size: tuple[int, int], out: np.ndarray) -> None:
        """Read the RGBA texture named ``texture`` (a GL name, ``size`` = (width, height)) into
        ``out``, a C-contiguous uint8 array of height x width x 4, bottom row first. Returns at
        once; :meth:`wait` for it (a read still running is waited for first)."""
        self.wait()
        width, height = size
        if out.dtype != np.uint8 or not out.flags.c_contiguous or out.nbytes != width * height * 4:
            raise ValueError(f"cannot read a {width}x{height} RGBA frame into {out.dtype} {out.shape}")
        self._pending = True
        self._jobs.put((texture, width, height, out.ctypes.data, out))

    def wait(self) -> str | None:
        """Wait for the read under way, if any; returns why it failed, or None."""
        if not self._pending:
            return None
        self._pending = False
        return self._done.get()

    @property
    def pending(self) -> bool:
        return self._pending

    def close(self) -> None:
        """Wait for the read under way, then end the thread and its context."""
        self.wait()
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(5.0)

    # The thread.
    def _run(self) -> None:
        egl = self._egl
        try:
            context = self._make_context()
        except Exception as error:  # reported to the maker, which falls back to reading itself
            self._done.put(f"{type(error).__name__}: {error}")
            return
        try:
            gl = _GLFunctions(egl)
            name = c_uint()
            gl.gen_framebuffers(1, byref(name))
            gl.bind_framebuffer(_GL_READ_FRAMEBUFFER, name.value)
            gl.pixel_store(_GL_PACK_ALIGNMENT, 1)
        except Exception as error:
            self._release(context)
            self._done.put(f"{type(error).__name__}: {error}")
            return
        self._done.put(None)
        attached = None
        while True:
            job = self._jobs.get()
            if job is None:
                break
            try:
                attached, error = self._read(gl, attached, *job[:4])
            except Exception as exc:  # whatever happens, the waiting show hears of it
                attached, error = None, f"{type(exc).__name__}: {exc}"
            self._done.put(error)
        self._release(context)

    @staticmethod
    def _read(gl: _GLFunctions, attached: int | None, texture: int, width: int, height: int,
              address: int) -> tuple[int | None, str | None]:
        """One read; returns the texture now attached to the thread's framebuffer, and the error."""
        if texture != attached:
            gl.framebuffer_texture(_GL_READ_FRAMEBUFFER, _GL_COLOR_ATTACHMENT0, _GL_TEXTURE_2D, texture, 0)
            code = gl.get_error()
            status = gl.check_framebuffer(_GL_READ_FRAMEBUFFER)
            if code != _GL_NO_ERROR or status != _GL_FRAMEBUFFER_COMPLETE:
                return None, (f"texture {texture} cannot be read (GL error 0x{code:x}, "
                              f"framebuffer status 0x{status:x})")
        gl.read_pixels(0, 0, width, height, _GL_RGBA, _GL_UNSIGNED_BYTE, address)
        code = gl.get_error()
        if code != _GL_NO_ERROR:
            return texture, f"glReadPixels failed (GL error 0x{code:x})"
        return texture, None

    def _make_context(self) -> int:
        egl = self._egl
        config_id = c_int()
        if not egl.eglQueryContext(self._display, self._share, _EGL_CONFIG_ID, byref(config_id)):
            raise RuntimeError(f"eglQueryContext failed (0x{egl.eglGetError():x})")
        config, found = c_void_p(), c_int()
        wanted = (c_int * 3)(_EGL_CONFIG_ID, config_id.value, _EGL_NONE)
        if not egl.eglChooseConfig(self._display, wanted, byref(config), 1, byref(found)) or found.value != 1:
            raise RuntimeError("the show context's EGL config cannot be found")
        if not egl.eglBindAPI(_EGL_OPENGL_API):  # per thread: this one has not bound any yet
            raise RuntimeError("eglBindAPI(OpenGL) failed")
        attributes = (c_int * 7)(_EGL_CONTEXT_MAJOR_VERSION, 3, _EGL_CONTEXT_MINOR_VERSION, 3,
                                 _EGL_CONTEXT_OPENGL_PROFILE_MASK, _EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
                                 _EGL_NONE)
        context = egl.eglCreateContext(self._display, config, self._share, attributes)
        if not context:
            raise RuntimeError(f"eglCreateContext failed (0x{egl.eglGetError():x})")
        if not egl.eglMakeCurrent(self._display, None, None, context):  # surfaceless
            code = egl.eglGetError()
            egl.eglDestroyContext(self._display, context)
            raise RuntimeError(f"eglMakeCurrent failed (0x{code:x})")
        return context

    def _release(self, context: int) -> None:
        self._egl.eglMakeCurrent(self._display, None, None, None)
        self._egl.eglDestroyContext(self._display, context)


class _GLFunctions:
    """The few GL entry points the reader calls, resolved through EGL in its thread."""

    def __init__(self, egl: ctypes.CDLL) -> None:
        def resolve(name: str, restype, *argtypes):
            address = egl.eglGetProcAddress(name.encode())
            if not address:
                raise RuntimeError(f"{name} is not available")
            return CFUNCTYPE(restype, *argtypes)(address)

        self.gen_framebuffers = resolve("glGenFramebuffers", None, c_int, POINTER(c_uint))
        self.bind_framebuffer = resolve("glBindFramebuffer", None, c_uint, c_uint)
        self.framebuffer_texture = resolve("glFramebufferTexture2D", None, c_uint, c_uint, c_uint, c_uint, c_int)
        self.check_framebuffer = resolve("glCheckFramebufferStatus", c_uint, c_uint)
        self.pixel_store = resolve("glPixelStorei", None, c_uint, c_int)
        self.read_pixels = resolve("glReadPixels", None, c_int, c_int, c_int, c_int, c_uint, c_uint, c_void_p)
        self.get_error = resolve("glGetError", c_uint)
