"""The built-in instruments; importing this package registers them by kind."""

from engine.audio.instruments import granulator, overtones, piano, sampler  # noqa: F401
