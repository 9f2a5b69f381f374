"""The audio process: the rack of instruments inside a PortAudio callback, away from the engine's GIL.

Started by :class:`engine.audio.live.LiveAudio` as ``python -m engine.audio.server SETTINGS.json``.
Everything heavy (numpy, the rack and its buffers, a warm-up block) is ready before the stream
opens. The callback drains the command ring and, when the show has a live MIDI input, this process's
own reader of that port, whose notes go to the instruments the current cue routes them to (so a
note sounds at once, with the last detune, and glides when the learner's detune for it arrives a
tick later). An instrument that raises is silenced for the rest of the process's life (the others
play on; the error is logged once). The main thread watches the stream: a device that
fails or vanishes ends the process (exit status 3; the engine starts a fresh one, which looks for
a device every second while draining commands); the process ends when the engine does, or,
under a recovering show's supervisor, when the supervisor does: a show that dies leaves its sound
playing, and the notes the port brings meanwhile play and are noted for the show that comes back.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import signal
import sys
import threading
import time

import numpy as np
from pydantic import BaseModel, ConfigDict

from engine.audio import command_ring as cmd
from engine.audio import shared
from engine.audio.rack import Rack, RackConfig
from engine.audio.native_stream import (ANY_VIEWED, ASLEEP, FAST, NOT_RENDERED, PYTHON_CALLBACK, STARTED,
                                       NativeStream, Words, native_callback)
from engine.audio.rack_block import KNEE, SILENT, VIEWED, granulator_callback
from engine.midi import EventQueue

log = logging.getLogger("showrunner.audio")

OUTPUT_UNDERFLOW = 0x4  # paOutputUnderflow
PA_ABORT = 2  # paAbort: a callback's result that stops the stream at once
STALL = 1.0  # seconds without a callback before the stream counts as lost
RETRY = 1.0  # seconds between attempts to open a device
# Whether a stream on the fused path gets the compiled PortAudio callback (engine.audio.native_stream)
# rather than PyAudio's: SHOWRUNNER_NATIVE_CALLBACK=0 keeps PyAudio's (to compare, or if in doubt).
NATIVE = os.environ.get("SHOWRUNNER_NATIVE_CALLBACK", "1") != "0"
IDLE_DRAIN = 0.02  # seconds between the main thread's drains of the ring while no stream plays
WATCH = 0.1  # seconds between its looks at a playing stream (stalled? the show ended?)
# SCHED_FIFO priority asked for: under ALSA, PortAudio's callback thread inherits it; under JACK,
# libjack gives the callback thread the server's priority - 5 (5 with jackd's default 10), and the
# other threads here, which inherit this one, stay below it.
RT_PRIORITY = 4
EXIT_DEVICE_LOST = 3  # exit status: the stream died; the engine restarts the process
# The health fields the callback writes, by index (no lookups in the callback).
_BLOCKS, _VOICES, _LIMITER_DB = (shared.FIELD[name] for name in ("blocks", "voices", "limiter_db"))
_NO_INPUT = shared.NO_INPUT
_finish_block = shared.finish_block


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str  # the shared state file
    rack: RackConfig = RackConfig()
    device: str | None = None  # output device name substring; None = the default device
    input_device: str | None = None  # audio input name substring, "default", or None = no input
    midi_input: str | None = None  # MIDI port name substring this process reads directly
    midi_api: str = "auto"
    log_file: str | None = None
    parent: int | None = None  # pid of the engine; the process ends with it
    # pid of the supervisor of a recovering show (engine.supervisor), when there is one: the process
    # then outlives a show that dies (the sound goes on; the restarted show takes it over) and ends
    # with the supervisor instead.
    keeper: int | None = None
    realtime: bool = True  # ask for realtime scheduling (falls back to a raised priority)


def choose_device(pa, pattern: str | None, kind: str = "output") -> tuple[int, str]:
    """(device index, "name (host API)") of the ``kind`` ("output" or "input") device whose label
    contains ``pattern`` (case-insensitive); None or "default" = the default device. LookupError
    (IOError from PortAudio for a missing default) when there is none."""
    if pattern is None or pattern == "default":
        info = pa.get_default_output_device_info() if kind == "output" \
            else pa.get_default_input_device_info()
        api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
        return int(info["index"]), f"{info['name']} ({api})"
    channels = "maxOutputChannels" if kind == "output" else "maxInputChannels"
    seen = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if info[channels] < 1:
            continue
        label = f"{info['name']} ({pa.get_host_api_info_by_index(info['hostApi'])['name']})"
        if pattern.lower() in label.lower():
            return index, label
        seen.append(label)
    raise LookupError(f"no audio {kind} matches '{pattern}' ({kind}s: {', '.join(seen) or 'none'})")


class AudioServer:
    def __init__(self, settings: ServerSettings, state: shared.SharedAudioState) -> None:
        self.settings = settings
        self.state = state
        self.pool = None
        if settings.rack.pool:
            from engine.audio.pool import SamplePool

            self.pool = SamplePool.attach(settings.rack.pool)
        self.rack = Rack(settings.rack, self.pool)
        self.block_size = settings.rack.block_size
        self.period = self.block_size / settings.rack.sample_rate
        self.midi_queue = EventQueue()
        self._stop = False
        self._keeper = None  # a pidfd of the supervisor, when the process outlives its show
        if settings.keeper is not None:
            try:
                self._keeper = os.pidfd_open(settings.keeper)
            except OSError:  # already gone: end at once
                self._stop = True
        self.midi = None
        self.pa = None
        self.stream = None
        self.channels = 2
        self.input_channels = 0
        self._leftover = np.zeros((0, 2), np.float32)
        self._errors = 0
        # Asleep: the last block was silent with nothing moving and nothing left to publish, and no
        # command has come since, so the next is zeros too: the callback skips the rack.
        self._asleep = False
        self._silence = bytes(8 * self.block_size)  # a silent block (of the device's channels: _open)
        self._zero_block = np.zeros((self.block_size, 2), np.float32)
        self._callback_thread: int | None = None  # the thread the device's callbacks come on
        # (written, read): commands wait when they differ (read as Python ints: no numpy scalars)
        self._ring_header = memoryview(state.ring.header)
        # The instruments whose view scenes read (engine.audio.shared), and whether the last view
        # each published held rows (an idle one is written once more, empty, then left alone).
        self._views = [index for index, instrument in enumerate(self.rack.instruments[:shared.VIEWS])
                       if instrument.view_fields]
        self._viewed = [True] * len(self._views)
        self._any_viewed = True  # True in self._viewed
        # The whole block in one compiled call (engine.audio.rack_block.granulator_callback)
        # when the rack has one and nothing else (an input, a MIDI port) is read in the callback:
        # its arguments after the start time, and the block it writes.
        self._fast: tuple | None = None
        self._fast_out = self.rack.out
        # What the fast path hands PortAudio: the block itself when PyAudio takes an array
        # (its parsing of the callback's result reads any buffer that needs no release: no copy),
        # else bytes of it.
        self._pass_arrays = arrays_pass_to_pyaudio()
        self._fast_data = self._fast_out.tobytes
        # The compiled PortAudio callback's words (engine.audio.native_stream), when the stream
        # was opened with it: it does the blocks that need no Python and calls _native_block for
        # the rest.
        self._native = False
        self._native_refused = False  # the arrays were not what it reads: never opened, FAST off
        self._words = Words()
        self._native_entry = PYTHON_CALLBACK(self._native_block)
        self._words.point(state.memory, state.ring.header, self._zero_block, self.block_size,
                          float(settings.rack.sample_rate), self.period,
                          ctypes.cast(self._native_entry, ctypes.c_void_p).value)
        self.rack.on_wire = self._choose_path
        self._choose_path()  # and again when a stream opens (its channels, an input, a port)
        self._warm_up()

    def _warm_up(self) -> None:
        self.rack.warm_up()
        if NATIVE:
            native_callback()  # the compiled PortAudio callback, loaded (numba's cache)
        self.state.map_pages()
        shared.warm_up_finish_block()  # the bookkeeping kernel, for every input the callback has
        # What exists now lives for the whole show: keep it out of the cyclic collector's sweeps,
        # so a collection that lands in a callback stays short.
        gc.collect()
        gc.freeze()

    # The callback (PortAudio's thread). It runs cold, once a block, so every line costs: the
    # ring is drained only when it holds commands or a MIDI port is read here.
    def callback(self, in_data, frame_count, _time_info, status):
        started = time.perf_counter()
        # The first block of a stream (get_ident reads pthread_self; get_native_id would be a
        # gettid system call every block).
        if self._callback_thread != threading.get_ident():
            self._callback_thread = threading.get_ident()
            keep_thread_state()
            if self.settings.realtime:
                outrank_this_process()
        state = self.state
        header = self._ring_header
        if self._asleep and header[0] == header[1] and frame_count == self.block_size \
                and not status & OUTPUT_UNDERFLOW:
            _finish_block(state.memory, state.health, self._zero_block, _NO_INPUT, started,
                          time.perf_counter() - started, self.period)
            return self._silence, 0  # paContinue
        if self._fast is not None and frame_count == self.block_size and not status:
            if header[0] != header[1]:
                self._drain()
            fast = self._fast  # (a command may have broken an instrument)
            if fast is not None:
                code = granulator_callback(started, *fast)
                if code or self._any_viewed:
                    return self._after_fused(code, started)
                return self._fast_data(), 0
        try:
            if status & OUTPUT_UNDERFLOW:
                state.set("underruns", state.get("underruns") + 1)
            if self.midi is not None or header[0] != header[1]:
                self._drain()
            block = self._frames(frame_count)
            if self._views:
                self._publish_views(max(int(state.health[_BLOCKS]) - 1, 0))
            heard = _NO_INPUT
            if self.input_channels and in_data:
                heard = np.frombuffer(in_data, np.float32).reshape(-1, self.input_channels)
            data = block.tobytes() if self.channels == 2 else \
                block.mean(axis=1, dtype=np.float32).tobytes()
        except Exception:
            self._callback_failed()
            data = bytes(4 * self.channels * frame_count)
            block, heard = np.zeros((frame_count, 2), np.float32), _NO_INPUT
        blocks = _finish_block(state.memory, state.health, block, heard, started,
                               time.perf_counter() - started, self.period)
        if not blocks & 15:  # for the HUD: no need to count voices every block
            self._report_voices()
        if self.rack.quiet and self.midi is None and not self.input_channels \
                and frame_count == self.block_size and True not in self._viewed:
            self._fall_asleep()
        return data, 0  # paContinue

    def _after_fused(self, code: int, started: float) -> tuple[bytes, int]:
        """What the compiled callback's block left to Python (``code``'s bits): the knee or the
        views, then the block's bookkeeping; an instrument's view to empty once nobody reads it;
        silence returned as it is."""
        state = self.state
        if code & (KNEE | VIEWED):
            block, bent = self._fast_out, False
            try:
                if code & KNEE:
                    self.rack.bend_compiled()
                bent = True
                if self._views:
                    self._publish_views(max(int(state.health[_BLOCKS]) - 1, 0))
            except Exception:
                self._callback_failed()
                if not bent:  # the block was not finished: silence, counted and tapped
                    block, code = self._zero_block, SILENT
            blocks = _finish_block(state.memory, state.health, block, _NO_INPUT, started,
                                   time.perf_counter() - started, self.period)
            if not blocks & 15:
                self._report_voices()
        elif self._any_viewed:  # (a cheap write: after the block's time was taken)
            try:
                # As the other path counts: the blocks before the last one when this one began.
                self._publish_views(max(int(state.health[_BLOCKS]) - 2, 0))
            except Exception:
                self._callback_failed()  # the views only: the block plays
        if code & SILENT:
            if not self._any_viewed and not code & VIEWED:
                self._asleep = True  # the next blocks are zeros until a command comes (reported)
            return self._silence, 0
        return self._fast_data(), 0

    def _callback_failed(self) -> None:
        self._errors += 1
        self.state.set("callback_errors", self._errors)
        if self._errors == 1:
            log.exception("audio callback failed (silence for this block; the show goes on)")

    def _choose_path(self) -> None:
        """The callback's path: the rack's compiled block with the bookkeeping in the same call
        when the rack has one and the callback reads nothing else (no input, no MIDI port, a
        stereo device, no frames left over from an odd-sized block) and no instrument has failed
        (the report counts a failed one's voices); else the general one."""
        fused = self.rack.fused
        self._fast_out = self.rack.out
        self._fast_data = self._fast_out.view if self._pass_arrays else self._fast_out.tobytes
        self._fast = None
        if fused is not None and self.midi is None and not self.input_channels \
                and self.channels == 2 and len(self._leftover) == 0 and True not in self.rack.broken:
            self._fast = (*fused, self.state.memory, self.period)
            if NATIVE and not self._native_refused:
                try:
                    self._words.fused(*fused)
                except ValueError as error:  # the compiled callback leaves every block to Python
                    self._native_refused = True
                    log.warning("the compiled audio callback refused the rack's arrays (%s)", error)
        self._sync_words()

    def _sync_words(self) -> None:
        """What the compiled PortAudio callback reads of this side's state (the path, asleep,
        a view to write or empty)."""
        words = self._words
        words.flag(FAST, self._fast is not None and not self._native_refused)
        words.flag(ASLEEP, self._asleep)
        words.flag(ANY_VIEWED, self._any_viewed)

    def _native_block(self, input_, output, frames, status, code, started) -> int:
        """What the compiled callback left to Python (engine.audio.native_stream): the whole block
        (``code`` NOT_RENDERED: :meth:`callback`, as PyAudio would call it) or what follows the
        fused call (:meth:`_after_fused`), into PortAudio's ``output``."""
        words = self._words
        self._asleep = words.is_set(ASLEEP)
        try:
            if code == NOT_RENDERED:
                heard = ctypes.string_at(input_, 4 * self.input_channels * frames) \
                    if input_ and self.input_channels else None
                data, _ = self.callback(heard, frames, None, status)
            else:
                data, _ = self._after_fused(code, started)
            size = 4 * self.channels * frames  # PortAudio's buffer: never more, zeros for less
            if isinstance(data, bytes):
                written = min(len(data), size)
                ctypes.memmove(output, data, written)
            else:
                written = min(data.nbytes, size)
                ctypes.memmove(output, data.ctypes.data, written)
            if written < size:
                ctypes.memset(output + written, 0, size - written)
        except Exception:
            # What escapes the callback's own handlers: as under PyAudio, silence and the stream
            # aborted, so the process ends and the engine starts a fresh one.
            log.exception("audio callback failed outside its handlers; the stream stops")
            ctypes.memset(output, 0, 4 * self.channels * frames)
            return PA_ABORT
        words.flag(STARTED, True)
        self._sync_words()
        return 0  # paContinue

    def _report_voices(self) -> None:
        """The voices sounding and the limiter's reduction, for the HUD."""
        health = self.state.health
        health[_VOICES] = self.rack.voices_sounding()
        health[_LIMITER_DB] = self.rack.limiter.reduction_db

    def _fall_asleep(self) -> None:
        self._report_voices()  # asleep, the every-16-blocks report stops: leave it current
        self._asleep = True

    def _drain(self) -> None:
        self._asleep = False  # a command may start a sound
        for record in self.state.ring.take():
            try:
                self.rack.apply_record(record)
            except Exception:  # one bad command must not lose the ones after it (note-offs)
                self._errors += 1
                self.state.set("callback_errors", self._errors)
                if self._errors == 1:
                    log.exception("a command failed in the audio process (the rest play on)")
        if self.midi is not None:
            self.midi.read_pending()  # notes that reached the port before this block sound in it
            for stamp, event in self.midi_queue.pop_due(float("inf")):
                self.state.write_heard(stamp, event)  # for a show that comes back after dying
                command = cmd.midi_command(event)
                if command is not None:
                    self.rack.apply(*command)  # to the instruments the cue routes notes to

    def _publish_views(self, blocks: int) -> None:
        """Each view a reader wants written (an idle instrument's once more, empty, then left);
        one nobody reads any more emptied once. ``blocks``: the blocks played before the last
        one when this block began."""
        rack, state = self.rack, self.state
        for k, index in enumerate(self._views):
            if rack.broken[index]:
                continue
            if state.view_wanted(index, blocks):
                if self._viewed[k] or not rack.instruments[index].idle():
                    self._viewed[k] = state.write_view(index, rack.instruments[index]) > 0
            elif self._viewed[k]:
                state.clear_view(index)
                self._viewed[k] = False
        self._any_viewed = True in self._viewed

    def _frames(self, count: int) -> np.ndarray:
        if count == self.block_size and len(self._leftover) == 0:
            return self.rack.render()
        parts = [self._leftover]
        have = len(self._leftover)
        while have < count:
            parts.append(self.rack.render().copy())
            have += self.block_size
        joined = np.concatenate(parts)
        self._leftover = joined[count:]
        self._choose_path()  # the compiled block's path only while no frames are left over
        return joined[:count]

    # The device (main thread).
    def _open(self) -> bool:
        import pyaudio

        from engine.midi_port import quiet_c_stderr

        self._close()
        try:
            with quiet_c_stderr():
                self.pa = pyaudio.PyAudio()  # a fresh scan: the device may have come back
            index, label = choose_device(self.pa, self.settings.device)
            info = self.pa.get_device_info_by_index(index)
            self.channels = min(2, int(info["maxOutputChannels"]))
            config = self.settings.rack
            duplex = {}
            self.input_channels = 0
            if self.settings.input_device:
                # Output and input share one stream (one clock): on stage the acoustic piano, in
                # the recording, stays in sync with the overtones.
                in_index, in_label = choose_device(self.pa, self.settings.input_device, "input")
                in_info = self.pa.get_device_info_by_index(in_index)
                # PortAudio (through pyaudio) gives a duplex stream one channel count for both.
                self.channels = self.input_channels = min(self.channels, int(in_info["maxInputChannels"]))
                duplex = {"input": True, "input_device_index": in_index}
                label += f", input {in_label}"
            # Notes held while there was no stream are stale. The callback is not running yet, so
            # the rack is still this thread's to touch.
            self.rack.apply(cmd.PANIC)
            self._asleep = False
            self._silence = bytes(4 * self.channels * self.block_size)
            self._choose_path()
            with quiet_c_stderr():
                self._native = False
                if self._fast is not None and NATIVE and not self._native_refused:
                    # The compiled callback (engine.audio.native_stream): Python only for what
                    # a block leaves to it. The same device and parameters as PyAudio's.
                    self._words.flag(STARTED, False)  # its first block goes to Python (the thread)
                    try:
                        self.stream = NativeStream(index, self.channels, config.sample_rate,
                                                   self.block_size, info["defaultLowOutputLatency"],
                                                   self._words)
                        self._native = True
                    except OSError as error:  # PyAudio's callback does the same work
                        log.warning("the compiled audio callback could not open (%s): PyAudio's "
                                    "plays instead", error)
                if not self._native:
                    self.stream = self.pa.open(
                        rate=config.sample_rate, channels=self.channels, format=pyaudio.paFloat32,
                        output=True, output_device_index=index, frames_per_buffer=self.block_size,
                        stream_callback=self.callback, start=False, **duplex)
            self.stream.start_stream()
        except Exception as error:
            self._close()
            return self._failed(f"{error}")
        self.state.device = label
        self.state.set("latency", self.stream.get_output_latency())
        self.state.set("input_channels", self.input_channels)
        self.state.set("compiled_callback", 1.0 if self._native else 0.0)  # which callback plays
        self.state.set("status", shared.RUNNING)
        log.info("audio out: %s, %d Hz, %d frames per block, %.1f ms output latency, %s callback",
                 label, self.settings.rack.sample_rate, self.block_size,
                 1000 * self.stream.get_output_latency(), "compiled" if self._native else "PyAudio's")
        return True

    def _failed(self, reason: str) -> bool:
        status = self.state.get("status")
        if status not in (shared.NO_DEVICE, shared.DEVICE_LOST):
            log.warning("no audio output (%s); the show goes on silently, retrying every %g s",
                        reason, RETRY)
        if status != shared.DEVICE_LOST:
            self.state.set("status", shared.NO_DEVICE)
        return False

    def _close(self) -> None:
        from engine.midi_port import quiet_c_stderr

        stream, pa, self.stream, self.pa = self.stream, self.pa, None, None
        with quiet_c_stderr():
            for what, release in (("closing the stream", stream and stream.close),
                                  ("terminating PortAudio", pa and pa.terminate)):
                try:
                    if release:
                        release()
                except Exception:
                    log.debug("%s failed", what, exc_info=True)

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        state = self.state
        state.set("pid", os.getpid())
        state.set("starts", state.get("starts") + 1)
        if self.settings.midi_input:
            from engine.midi_port import MidiPortInput

            # The callback reads the port at every block; the thread only watches for hot-plug
            # and reads as a safety net.
            self.midi = MidiPortInput(self.settings.midi_input, self.midi_queue, time.monotonic,
                                      api=self.settings.midi_api, read_interval=0.02)
            self.midi.open(required=False)
        retry_at = 0.0
        last_blocks, last_progress = -1, time.monotonic()
        try:
            while not self._stop and self._parent_alive():
                now = time.monotonic()
                if self.stream is None:
                    self._drain()  # keep the ring flowing and the voices current while silent
                    if now >= retry_at:
                        retry_at = now + RETRY
                        if self._open():
                            last_progress = now
                else:
                    blocks = int(state.get("blocks"))
                    if blocks != last_blocks:
                        last_blocks, last_progress = blocks, now
                    if not self.stream.is_active() or now - last_progress > STALL:
                        # Closing a stream whose server died can block for good inside PortAudio
                        # (JACK), so the process leaves at once and the engine starts a fresh one,
                        # which looks for the device again.
                        log.warning("audio output lost (%s); starting afresh", state.device or "device")
                        state.set("status", shared.DEVICE_LOST)
                        logging.shutdown()
                        os._exit(EXIT_DEVICE_LOST)
                # Silent, the ring flows through here; playing, the callback drains it and this
                # thread only watches (a stall, the show's end), so it wakes 10 times a second.
                time.sleep(IDLE_DRAIN if self.stream is None else WATCH)
        finally:
            self._close()
            if self.midi is not None:
                self.midi.close()
            state.set("status", shared.STOPPED)

    def _parent_alive(self) -> bool:
        if self._keeper is not None:
            import select

            return not select.select([self._keeper], [], [], 0)[0]  # readable: it has ended
        parent = self.settings.parent
        return parent is None or os.getppid() == parent


def arrays_pass_to_pyaudio() -> bool:
    """Whether a callback may return its block as a numpy array rather than bytes: PyAudio reads
    the result with PyArg_ParseTuple's "z#", which takes a buffer with no release function
    (numpy's arrays have none) and copies from it at once. Asked of this Python and numpy, as
    PyAudio would, so that a numpy that changes falls back to bytes."""
    parse = getattr(ctypes.pythonapi, "_PyArg_ParseTuple_SizeT", None)
    if parse is None:
        return False
    parse.restype = ctypes.c_int
    parse.argtypes = (ctypes.py_object, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                      ctypes.POINTER(ctypes.c_ssize_t), ctypes.POINTER(ctypes.c_int))
    block = np.zeros((4, 2), np.float32)
    data, size, flag = ctypes.c_void_p(), ctypes.c_ssize_t(), ctypes.c_int()
    try:
        parsed = parse((block, 7), b"z#i", ctypes.byref(data), ctypes.byref(size), ctypes.byref(flag))
    except Exception:  # a TypeError set by the parser surfaces here
        return False
    return bool(parsed) and data.value == block.ctypes.data and size.value == block.nbytes \
        and flag.value == 7


def raise_priority(realtime: bool = True) -> str:
    """Give this process, and every thread it starts later (PortAudio's, the MIDI reader), the
    scheduling a sound process needs: SCHED_FIFO when allowed (root, or an rtprio limit as the
    Debian audio group has), else a higher priority (nice -10), else as it is. On a busy machine
    this is what keeps blocks on time; Linux's realtime throttling keeps a runaway from freezing it.
    Returns what was obtained, for the log."""
    if realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
            return f"realtime (SCHED_FIFO {RT_PRIORITY})"
        except (PermissionError, OSError, AttributeError):
            pass
    try:
        os.nice(-10)
        return "raised (nice -10)"
    except (PermissionError, OSError):
        return "normal (no permission for realtime or a raised priority)"


def keep_thread_state() -> None:
    """Keep the calling thread's Python thread state from one callback to the next. PyAudio
    enters Python from the device's thread (JACK's, PortAudio's: not one Python started) with
    PyGILState_Ensure and leaves with PyGILState_Release, which then deletes the thread state it
    made: a new one every block, with an mmap and munmap of its 16 KiB frame stack and page faults
    (measured: a third of the silent callback thread's CPU time was the kernel's). One more
    Ensure, never released, keeps it (the process ends with the thread's stream)."""
    ctypes.pythonapi.PyGILState_Ensure()


def outrank_this_process() -> None:
    """Make the calling thread (the callback's) the most urgent of this process: SCHED_FIFO one
    above the rest, unless it already is (libjack's realtime callback thread). A non-realtime
    JACK server gives its clients' threads normal scheduling, and PortAudio's ALSA thread only
    inherits; either way nothing else here may delay the sound. No permission: left as it is."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_FIFO and os.sched_getparam(0).sched_priority > RT_PRIORITY:
            return
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY + 1))
    except (PermissionError, OSError, AttributeError):
        pass


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the engine dies (prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as file:
        settings = ServerSettings.model_validate(json.load(file))
    logger = logging.getLogger("showrunner")
    logger.setLevel(logging.DEBUG)
    handler = logging.FileHandler(settings.log_file, encoding="utf-8") if settings.log_file \
        else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    if settings.keeper is None:
        _die_with_parent()
    scheduling = raise_priority(settings.realtime)  # before any thread starts: they inherit it
    log.info("audio process scheduling: %s", scheduling)
    state = shared.SharedAudioState.attach(settings.state)
    server = AudioServer(settings, state)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle; it ends us
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
