"""A yardstick for the granular benchmark, as a child process of its own (its CPU time is measured
from outside): a PortAudio stream on JACK whose callback is compiled and makes each block in ONE
compiled call, with no Python in any block.

It plays the benchmark's grain stream (bench/grain_players.py: synchronous grains of DURATION with
a Hann window, position and pitch drawn per grain, GAIN each, 4-point Hermite interpolation as our
granulator reads) through a peak limiter like the rack's, all in one numba function over arrays
made before the stream opens, called by a numba ``cfunc`` that PortAudio calls (opened as our
audio process opens its compiled callback: engine.audio.native_stream). It is not an instrument of
the project (no commands, no routing, no views, no tap, no health report): it shows what a process
of this design pays for this stream with nothing else to do, against our audio process, whose
block does all of those.

``python -m bench.fused_grains TABLE.wav`` opens the default output (JACK's; JACK client
``fused_grains``) at 48 kHz, 256 frames per buffer, 2 channels of float32, prints ``ready``, then
answers ``play DENSITY`` and ``stop`` with ``ok`` until ``quit`` (or the end of its stdin).
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np
from numba import carray, cfunc, njit, types

from bench.grain_players import (DURATION, GAIN, PERIOD, PITCH_JITTER, POSITION, POSITION_DEVIATION,
                                 SAMPLE_RATE)
from engine.audio.native_stream import NativeStream, pointer_at

CLIENT = b"fused_grains"
MAX_GRAINS = 512
LENGTH = int(round(DURATION * SAMPLE_RATE))
THRESHOLD = 0.708  # the rack's limiter's (-3 dBFS)
# state: 0 samples to the next onset, 1 density, 2 limiter gain, 3 playing, 4 limiter recovery
WAIT, DENSITY, LIMIT, PLAYING, RECOVERY = range(5)


@njit(cache=True)
def block(out, mix, table, window, grains, state):  # pragma: no cover - compiled
    """One block into ``out`` (interleaved stereo float32): start the grains due in it, add every
    sounding grain, limit, interleave. ``grains`` rows: sounding, start position, ratio, age at
    the block's start (negative: starts within it)."""
    n = mix.shape[0]
    for i in range(n):
        mix[i] = 0.0
    usable = table.shape[0] - 4 - (1.0 + PITCH_JITTER) * LENGTH
    if state[PLAYING] > 0.0:
        at = 0.0
        while state[WAIT] < n - at:
            at += state[WAIT]
            for g in range(MAX_GRAINS):
                if grains[g, 0] == 0.0:
                    grains[g, 0] = 1.0
                    grains[g, 1] = 1.0 + (POSITION + (2.0 * np.random.random() - 1.0) * POSITION_DEVIATION) * usable
                    grains[g, 2] = 1.0 + (2.0 * np.random.random() - 1.0) * PITCH_JITTER
                    grains[g, 3] = -np.floor(at)
                    break
            state[WAIT] = SAMPLE_RATE / state[DENSITY]
        state[WAIT] -= n - at
    for g in range(MAX_GRAINS):
        if grains[g, 0] == 0.0:
            continue
        age0 = int(grains[g, 3])
        position, ratio = grains[g, 1], grains[g, 2]
        for i in range(max(0, -age0), n):
            age = age0 + i
            if age >= LENGTH:
                grains[g, 0] = 0.0
                break
            x = position + ratio * age
            k = int(x)
            f = x - k
            ym1, y0, y1, y2 = table[k - 1], table[k], table[k + 1], table[k + 2]
            c1 = 0.5 * (y1 - ym1)
            c2 = ym1 - 2.5 * y0 + 2.0 * y1 - 0.5 * y2
            c3 = 0.5 * (y2 - ym1) + 1.5 * (y0 - y1)
            mix[i] += GAIN * window[age] * (((c3 * f + c2) * f + c1) * f + y0)
        grains[g, 3] = age0 + n
    peak = 0.0
    for i in range(n):
        peak = max(peak, abs(mix[i]))
    start = state[LIMIT]
    target = min(1.0, THRESHOLD / peak) if peak > 0.0 else 1.0
    end = target if target < start else start + (target - start) * state[RECOVERY]
    for i in range(n):
        value = mix[i] * (start + (end - start) * (i + 1) / n)
        out[2 * i] = value
        out[2 * i + 1] = value
    state[LIMIT] = end


_ARRAYS = 6  # the words the callback reads: mix, table (address, size), window, grains, state


@cfunc(types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64,
                   types.voidptr), cache=True, nopython=True)
def callback(_input, output, _frames, _time_info, _status, user):  # pragma: no cover - compiled
    """PortAudio's callback: the block, from the arrays whose addresses ``user`` holds."""
    words = carray(user, (_ARRAYS,), np.uint64)
    block(carray(output, (2 * PERIOD,), np.float32), carray(pointer_at(words[0]), (PERIOD,), np.float64),
          carray(pointer_at(words[1]), (words[2],), np.float64),
          carray(pointer_at(words[3]), (LENGTH,), np.float64),
          carray(pointer_at(words[4]), (MAX_GRAINS, 4), np.float64),
          carray(pointer_at(words[5]), (5,), np.float64))
    return 0


class _Words:
    def __init__(self, *arrays: np.ndarray) -> None:
        mix, table, window, grains, state = arrays
        self.array = np.array([mix.ctypes.data, table.ctypes.data, table.size, window.ctypes.data,
                               grains.ctypes.data, state.ctypes.data], np.uint64)
        self.address, self._kept = self.array.ctypes.data, arrays


def main(argv: list[str]) -> int:
    import pyaudio
    import soundfile

    table = soundfile.read(argv[0], dtype="float64", always_2d=True)[0][:, 0].copy()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(LENGTH) / LENGTH)
    grains = np.zeros((MAX_GRAINS, 4))
    state = np.array([0.0, 200.0, 1.0, 0.0, 1.0 - np.exp(-PERIOD / (0.3 * SAMPLE_RATE))])
    mix = np.zeros(PERIOD)
    user = _Words(mix, table, window, grains, state)
    ctypes.CDLL("libportaudio.so.2").PaJack_SetClientName(CLIENT)
    audio = pyaudio.PyAudio()  # PortAudio started, the default device found
    info = audio.get_default_output_device_info()
    stream = NativeStream(int(info["index"]), 2, SAMPLE_RATE, PERIOD, info["defaultLowOutputLatency"],
                          user, callback.address)
    stream.start_stream()
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["quit"]:
            break
        if words[:1] == ["play"] and len(words) == 2:
            state[WAIT], state[DENSITY], state[PLAYING] = 0.0, float(words[1]), 1.0
        elif words[:1] == ["stop"]:
            state[PLAYING] = 0.0
        print("ok", flush=True)
    stream.close()
    audio.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
