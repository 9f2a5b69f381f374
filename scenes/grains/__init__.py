"""Grains: the piano plays grain clouds of recordings, and the grain tools play beside it.

- ``grain_clouds``: every note a cloud of grains of a recording at its pitch; the left hand picks
  the source and the position, the pedals freeze and thin the cloud; the picture shows the source's
  waveform with every sounding grain where it reads. With ``tape``, a granulator of the rack (the
  grain tools) rendered into a table at load plays under the live clouds as fixed media.

The instrument is the engine's granulator (engine/audio/instruments/granulator.py); the setlist is
setlists/grains.toml.
"""

from scenes.grains.clouds import GrainClouds  # noqa: F401
