"""The artificial ear: a listening network drawn as a lit graph, whose optimised inputs become the
loops you hear (../shared/REFERENCE-EAR.md; issue 22).

The network is :mod:`scenes.ear.network` (a causal constant-Q scaleogram in polyphase form and a
small CPC), the material it learns :mod:`scenes.ear.data`, the learner :mod:`scenes.ear.learner`,
the offline training command :mod:`scenes.ear.train` (``showrunner train ear``), input optimisation
:mod:`scenes.ear.dream`, the neurons' layout :mod:`scenes.ear.layout`.

- ``ear`` (:mod:`scenes.ear.player`): the ear listens to the show, its neurons lit, and dreams
  loops a sampler plays.
"""

from scenes.ear.player import Ear  # noqa: F401
