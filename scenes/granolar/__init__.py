"""Granolar: a variational autoencoder of sound grains, trained on stage and played from the piano
(../shared/REFERENCE-GRANULAR.md part 1; issue 21).

So far: the network (:mod:`scenes.granolar.vae`, polyphase convolutions), the grains it learns
(:mod:`scenes.granolar.data`), the learner (:mod:`scenes.granolar.learner`) and the offline
training command (:mod:`scenes.granolar.train`, ``showrunner train vae``). Its scenes come next.
"""
