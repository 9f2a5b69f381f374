"""A JACK client that only counts xruns, in a process of its own, for the audio soak.

It registers no process callback and no ports, so it adds no work to JACK's cycle and cannot be
late itself: the xruns it counts are the graph's, not its own. A client that records (such as
:class:`~bench.jack_recorder.JackRecorder`) runs Python in every cycle and can miss cycles under
the soak's load, and PortAudio reports every xrun of the graph to the audio process as an
underflow. Whether sound is played is checked on the audio process's tap instead.

``python -m bench.jack_listener`` prints ``ready`` once its client is active, then answers lines on
stdin: ``mark`` starts a measured window; ``report`` prints one JSON object ``{"xruns": N}``, the
JACK xrun notifications since the mark, and ``"at"``: when each was notified
(``time.perf_counter()``, the clock the audio process stamps its blocks with). It exits when stdin
closes.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import jack


def main() -> int:
    client = jack.Client("xrun-listener", no_start_server=True)
    lock = threading.Lock()
    xruns: list[float] = []

    def on_xrun(_delay_us: float) -> None:
        with lock:
            xruns.append(time.perf_counter())

    client.set_xrun_callback(on_xrun)
    client.activate()
    try:
        print("ready", flush=True)
        at_mark = 0
        for line in sys.stdin:
            command = line.strip()
            with lock:
                seen = list(xruns)
            if command == "mark":
                at_mark = len(seen)
            elif command == "report":
                print(json.dumps({"xruns": len(seen) - at_mark, "at": seen[at_mark:]}), flush=True)
        return 0
    finally:
        client.deactivate()
        client.close()


if __name__ == "__main__":
    sys.exit(main())
