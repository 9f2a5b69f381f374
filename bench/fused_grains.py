"""A yardstick for the granular benchmark, as a child process of its own (its CPU time is measured
from outside): a PyAudio stream on JACK whose callback makes each block in ONE compiled call.

It plays the benchmark's grain stream (bench/grain_players.py: synchronous grains of DURATION with
a Hann window, position and pitch drawn per grain, GAIN each, 4-point Hermite interpolation as our
granulator reads) through a peak limiter like the rack's, all in one numba function over arrays
made before the stream opens: no Python between the callback's entry and its return but that one
call. It is not an instrument of the project (no commands, no routing, no views, no tap, no
health report): it shows what a PyAudio process pays for this stream when the block is computed
without Python, against our audio process, whose rack calls Python for each of those parts.

``python -m bench.fused_grains TABLE.wav`` opens the default output (JACK's; JACK client
``fused_grains``) at 48 kHz, 256 frames per buffer, 2 channels of float32, prints ``ready``, then
answers ``play DENSITY`` and ``stop`` with ``ok`` until ``quit`` (or the end of its stdin).
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np
from numba import njit

from bench.grain_players import (DURATION, GAIN, PERIOD, PITCH_JITTER, POSITION, POSITION_DEVIATION,
                                 SAMPLE_RATE)
from engine.audio.server import keep_thread_state

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


def main(argv: list[str]) -> int:
    import pyaudio
    import soundfile

    table = soundfile.read(argv[0], dtype="float64", always_2d=True)[0][:, 0].copy()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(LENGTH) / LENGTH)
    grains = np.zeros((MAX_GRAINS, 4))
    state = np.array([0.0, 200.0, 1.0, 0.0, 1.0 - np.exp(-PERIOD / (0.3 * SAMPLE_RATE))])
    out = np.zeros(2 * PERIOD, np.float32)
    mix = np.zeros(PERIOD)
    block(out, mix, table, window, grains, state)  # compiled (or loaded from numba's cache) now
    kept: list[bool] = []

    def callback(_in_data, _frame_count, _time_info, _status):
        if not kept:
            kept.append(True)
            keep_thread_state()
        block(out, mix, table, window, grains, state)
        return out.tobytes(), pyaudio.paContinue

    ctypes.CDLL("libportaudio.so.2").PaJack_SetClientName(CLIENT)
    audio = pyaudio.PyAudio()
    stream = audio.open(rate=SAMPLE_RATE, channels=2, format=pyaudio.paFloat32, output=True,
                        frames_per_buffer=PERIOD, stream_callback=callback)
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
    stream.stop_stream()
    stream.close()
    audio.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
