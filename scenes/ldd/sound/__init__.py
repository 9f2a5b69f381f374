"""The first piece's sound: the overtone voice (kind ``overtones``), whose partials k >= 2 the
learners detune.

- ``settings``: what the voice sounds like (:class:`OvertoneSettings`, its units and defaults).
- ``voices``: the bank of voices (:class:`OvertoneVoices`).
- ``kernels``: their block, compiled (numba, cached beside the file).
- ``instrument``: the rack's instrument, which the live audio process imports by name.

Nothing here imports jax or the piece's scenes, so the audio process stays light.
"""
