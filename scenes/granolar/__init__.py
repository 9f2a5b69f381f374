"""Granolar: a variational autoencoder of sound grains, trained on stage and played from the piano
(../shared/REFERENCE-GRANULAR.md part 1; issue 21).

- ``vae_grains`` (:mod:`scenes.granolar.player`): the model learns pool tables beside the show; a
  latent point (knobs, OSC ``/latent``) decoded into a table a granulator plays from the piano.

The network is :mod:`scenes.granolar.vae` (polyphase convolutions), the grains it learns
:mod:`scenes.granolar.data`, the learner :mod:`scenes.granolar.learner`, the offline training
command :mod:`scenes.granolar.train` (``showrunner train vae``).
"""

from scenes.granolar.player import VaeGrains  # noqa: F401
