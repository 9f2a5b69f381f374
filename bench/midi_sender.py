"""The sending side of the MIDI latency benchmark, run as its own process.

``python -m bench.midi_sender --count N --rate HZ`` opens a virtual JACK MIDI output port
``bench-sender:piano``, prints ``ready``, waits for a ``go`` line on stdin, then sends N messages
(note-on / note-off alternately) about ``rate`` times a second. Each message is identified by its
note and velocity (see :func:`message`). When done it prints one JSON line ``{"sends": [...]}``,
the ``time.perf_counter()`` taken just before each send, and keeps its port until stdin closes. On
Linux that clock is CLOCK_MONOTONIC, the same in every process, so the receiver can subtract it from
its own stamps.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import rtmidi

LOWEST = 21  # A0
KEYS = 88


def message(index: int) -> list[int]:
    """Message ``index``: pair ``index // 2`` picks note and velocity; even = note-on, odd = note-off."""
    pair = index // 2
    note, velocity = LOWEST + pair % KEYS, 1 + pair // KEYS
    if velocity > 127:
        raise ValueError("too many messages to identify uniquely")
    return [0x90 if index % 2 == 0 else 0x80, note, velocity]


def index_of(is_note_on: bool, note: int, velocity: int) -> int:
    """Inverse of :func:`message`."""
    pair = (velocity - 1) * KEYS + (note - LOWEST)
    return 2 * pair + (0 if is_note_on else 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="bench-sender")
    out.open_virtual_port("piano")
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    # Random offsets within each period spread the send times over every phase of the show's tick,
    # instead of the few phases a fixed 50 Hz against 60 Hz ticks would visit.
    jitter = random.Random(args.seed)
    period = 1.0 / args.rate
    start = time.perf_counter() + 0.05
    sends = []
    for index in range(args.count):
        due = start + index * period + jitter.uniform(0.0, period / 2)
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        payload = message(index)
        sends.append(time.perf_counter())
        out.send_message(payload)
    time.sleep(0.3)  # let the last messages leave before the port goes away
    print(json.dumps({"sends": sends}), flush=True)
    sys.stdin.readline()  # keep the port until the receiver has let go of it (stdin closed)
    out.close_port()
    out.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
