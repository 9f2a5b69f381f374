"""Sound: a rack of instruments (the piano, the sampler, a piece's own such as the first piece's
overtone voice, ...), its live audio process and its offline renderer.

The rack (:mod:`engine.audio.rack`) runs identically in the live audio process
(:mod:`engine.audio.server`, driven by a PortAudio callback) and in the offline renderer
(:mod:`engine.audio.offline`, driven block by block in virtual time). Instruments implement
:class:`engine.audio.instrument.Instrument`; tables of sound live in the shared sample pool
(:mod:`engine.audio.pool`). The engine talks to either side through
:class:`engine.audio.control.AudioOut`.
"""

from engine.audio import kernel_cache

kernel_cache.install()  # before any kernel of this package is decorated (see kernel_cache)
