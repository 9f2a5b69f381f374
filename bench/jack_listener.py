"""A :class:`~bench.jack_recorder.JackRecorder` in a process of its own, for the audio soak.

The recorder runs Python in JACK's process thread. In the benchmark process that thread would wait
for the GIL while the main thread renders and reads back frames, and be late: the xruns it caused
would be the benchmark's, yet PortAudio reports every xrun of the graph to the audio process as an
underflow. Here its GIL is its own.

``python -m bench.jack_listener [--pattern REGEX]`` prints ``ready`` once it is connected to the
output ports, then answers lines on stdin: ``mark`` starts a measured window; ``report`` prints one
JSON object about the window so far: ``xruns`` (JACK xrun callbacks), ``cycles`` (process cycles
recorded), ``seconds`` of audio looked at, about once a second, ``silent_seconds`` (of those, the
ones in stretches whose peak stayed under 1e-4) and ``peak``.
It exits when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import selectors
import sys

import numpy as np

from bench.jack_recorder import JackRecorder

SILENT = 1e-4  # peak under this over a whole second: nothing was playing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default=r"^PortAudio.*:out_[01]$")
    parser.add_argument("--connect-timeout", type=float, default=15.0)
    args = parser.parse_args(argv)
    recorder = JackRecorder(seconds=5.0, pattern=args.pattern, name="listener")
    try:
        if not recorder.wait_connected(args.connect_timeout):
            print(json.dumps({"error": f"no output port matches {args.pattern}"}), flush=True)
            return 1
        print("ready", flush=True)
        selector = selectors.DefaultSelector()
        selector.register(sys.stdin, selectors.EVENT_READ)
        xruns_at_mark, cycles_at_mark = recorder.xruns, recorder.cycles
        seconds, silent, peak = 0.0, 0.0, 0.0
        last = recorder.mark()
        while True:
            if selector.select(timeout=1.0):
                line = sys.stdin.readline()
                if not line:
                    return 0
                command = line.strip()
                if command == "mark":
                    xruns_at_mark, cycles_at_mark = recorder.xruns, recorder.cycles
                    seconds, silent, peak, last = 0.0, 0.0, 0.0, recorder.mark()
                elif command == "report":
                    print(json.dumps({"xruns": recorder.xruns - xruns_at_mark,
                                      "cycles": recorder.cycles - cycles_at_mark,
                                      "seconds": seconds, "silent_seconds": silent,
                                      "peak": peak}), flush=True)
                continue
            if recorder.written - last >= recorder.rate:  # a second's audio to look at
                heard = recorder.since(last)
                last = recorder.mark()
                loudest = float(np.abs(heard).max())
                peak = max(peak, loudest)
                seconds += len(heard) / recorder.rate
                silent += len(heard) / recorder.rate if loudest < SILENT else 0.0
    finally:
        recorder.close()


if __name__ == "__main__":
    sys.exit(main())
