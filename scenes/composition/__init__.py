"""Music that a process writes (../shared/REFERENCE-COMPOSITION.md; issue 23): Mozart's dice game
as a note source (:mod:`scenes.composition.dice`, kind "dice") and the scene that shows it
(:mod:`scenes.composition.waltz`, ``dice_waltz``)."""

from scenes.composition import dice  # noqa: F401  (registers the "dice" note source)
from scenes.composition.waltz import DiceWaltzScene  # noqa: F401,E402
from scenes.composition import padberg  # noqa: F401,E402  (registers the "padberg" note source)
from scenes.composition.text_scene import PadbergScene  # noqa: F401,E402
