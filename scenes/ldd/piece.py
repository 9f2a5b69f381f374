""""Losses, Dissonances, and Distortions" as a piece: importing this module (the ``ldd`` entry point
of ``showrunner.pieces``) registers its scenes and its instrument.

- ``ldd_cubic`` (part 1): bass notes start new polynomials, upper notes step the learner; each
  step's loss detunes the played note's overtones.
- ``ldd_knot`` (part 2): left-hand chords start new Lissajous knots, learned while the chord is held;
  the loss detunes every sounding note.
- ``ldd_split`` (part 3): part 2 over the performer's video, split into R, G, B by the gradient.
- ``ldd_bubbles`` (part 4): part 1 over the performer's video, a bubble lens per note played.
- ``camera``: the performer's video alone (an RGB split optional): the camera checked before the show.
- the ``overtones`` instrument (scenes/ldd/sound): the voice whose partials the learners detune.
"""

from scenes.ldd.cubic import CubicPart  # noqa: F401
from scenes.ldd.knot import KnotPart  # noqa: F401
from scenes.ldd.with_video import BubblesPart, SplitPart  # noqa: F401
from scenes.ldd.performer import Camera  # noqa: F401
from scenes.ldd.sound.instrument import OvertoneInstrument  # noqa: F401
