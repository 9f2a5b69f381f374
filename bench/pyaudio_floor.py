"""The floor of the granular benchmark, as a child process of its own (its CPU time is measured
from outside): a PyAudio stream on JACK whose callback returns silence and does nothing else.

It is what any process that plays through PyAudio pays before it computes a sample: JACK's
client thread waking every period, PortAudio's buffer processing, and PyAudio entering Python for
the callback (the GIL, the arguments it builds, the bytes it copies back). The thread state is
kept from one block to the next, as our audio process keeps it (``keep_thread_state``).

``python -m bench.pyaudio_floor`` opens the default output (JACK's, with the server
``JACK_DEFAULT_SERVER`` names; JACK client ``pyaudio_floor``) at 48 kHz, 256 frames per buffer, 2 channels of float32, prints
``ready`` and waits for ``quit`` (or the end of its stdin).
"""

from __future__ import annotations

import ctypes
import sys

from engine.audio.server import keep_thread_state

SAMPLE_RATE, BUFFER, CHANNELS = 48000, 256, 2
CLIENT = b"pyaudio_floor"  # its JACK client's name: not "PortAudio", the name of our process's


def main() -> int:
    import pyaudio

    silence = bytes(4 * CHANNELS * BUFFER)
    kept: list[bool] = []

    def callback(_in_data, _frame_count, _time_info, _status):
        if not kept:
            kept.append(True)
            keep_thread_state()
        return silence, pyaudio.paContinue

    # The PortAudio pyaudio links; named before PortAudio starts (PyAudio() does).
    ctypes.CDLL("libportaudio.so.2").PaJack_SetClientName(CLIENT)
    audio = pyaudio.PyAudio()
    stream = audio.open(rate=SAMPLE_RATE, channels=CHANNELS, format=pyaudio.paFloat32, output=True,
                        frames_per_buffer=BUFFER, stream_callback=callback)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    stream.stop_stream()
    stream.close()
    audio.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
