"""showrunner engine: piece-agnostic show control (clock, scenes, setlists, MIDI, display, CLI)."""

import os

# libjack otherwise tries to launch a default JACK server (and may grab the sound card) when a
# client cannot find one; a show must never start servers behind the performer's back.
os.environ.setdefault("JACK_NO_START_SERVER", "1")

__version__ = "0.1.0"
