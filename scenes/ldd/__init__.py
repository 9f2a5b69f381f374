""""Losses, Dissonances, and Distortions" (P. S. Castro, 2021): the first piece.

The piece itself (its four parts as scenes, and its instrument) is ``scenes.ldd.piece``, which the
``ldd`` entry point names; importing this package imports nothing, so the live audio process can
import the piece's sound (``scenes.ldd.sound``) without its scenes and jax. Inside: the scenes
(``cubic``, ``knot``, ``with_video``, ``performer``), their learners (``learners``), the video
distortions (``distortions``) and the overtone voice (``sound``).
"""
