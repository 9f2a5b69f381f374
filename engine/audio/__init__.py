"""Sound: the overtone mixer (additive synth), its live audio process and its offline renderer.

The DSP (:mod:`engine.audio.mixer`) is pure numpy and runs identically in the live audio process
(:mod:`engine.audio.server`, driven by a PortAudio callback) and in the offline renderer
(:mod:`engine.audio.offline`, driven block by block in virtual time). The engine talks to either
through :class:`engine.audio.control.AudioOut`.
"""
