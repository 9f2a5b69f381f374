"""A black stage: for intermissions, and as the quiet cue before a piece starts."""

from engine.scene import Scene


class Blackout(Scene):
    name = "blackout"
