"""The pyo peer of the granular benchmark, as a child process of its own (its CPU time is measured
from outside): pyo's ``Particle`` on JACK, playing the benchmark's grain stream.

``python -m bench.pyo_grains TABLE.wav GAIN DURATION JITTER POSITION DEVIATION`` boots a pyo server
on JACK (the server ``JACK_DEFAULT_SERVER`` names; 48 kHz, 256-frame buffer, 2 outputs, no input,
no MIDI; JACK client ``pyo_grains``) and builds, stopped: ``Particle`` over the table (a mono sound
file) with a ``HannTable`` envelope, ``dur`` = DURATION seconds, ``dev`` = 0 (synchronous onsets),
centred pan, ``mul`` = GAIN (linear), pitch ``Noise(mul=JITTER, add=1)`` and position
``Noise(mul=DEVIATION, add=POSITION)`` (fractions of the table, scaled to frames), each sampled by
a grain when it starts. Then it prints ``ready`` and obeys its stdin, one command a line, answering
``ok`` to each: ``play DENSITY`` (grains per second), ``stop``, ``quit``.

pyo is imported only here (the ``bench`` extra installs it).
"""

from __future__ import annotations

import sys

CLIENT = "pyo_grains"  # the JACK client name: ports pyo_grains:output_1 and _2
SAMPLE_RATE, BUFFER = 48000, 256


def main(argv: list[str]) -> int:
    path, gain, duration, jitter, position, deviation = argv[0], *map(float, argv[1:6])
    from pyo import HannTable, Noise, Particle, Server, SndTable

    server = Server(sr=SAMPLE_RATE, nchnls=2, buffersize=BUFFER, duplex=0, audio="jack",
                    jackname=CLIENT)
    server.deactivateMidi()
    server.boot()
    if not server.getIsBooted():
        print("pyo's server did not boot on JACK", file=sys.stderr, flush=True)
        return 1
    server.start()
    table = SndTable(path)
    frames = table.getSize()
    frames = frames[0] if isinstance(frames, list) else frames
    pitch = Noise(mul=jitter, add=1.0)
    start = Noise(mul=deviation * frames, add=position * frames)
    grains = Particle(table, HannTable(), dens=1.0, pitch=pitch, pos=start, dur=duration, dev=0.0,
                      pan=0.5, chnls=2, mul=gain)
    streams = (pitch, start, grains)
    for stream in streams:
        stream.stop()
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["play"]:
            grains.dens = float(words[1])
            pitch.play()
            start.play()
            grains.out()
        elif words[:1] == ["stop"]:
            for stream in streams:
                stream.stop()
        elif words[:1] == ["quit"]:
            break
        print("ok", flush=True)
    server.stop()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
