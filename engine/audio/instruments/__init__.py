"""The engine's instruments; importing this package registers them by kind. A piece's own (the
first piece's ``overtones``) register when their module is imported: see engine.audio.instrument."""

from engine.audio.instruments import granulator, piano, sampler  # noqa: F401
