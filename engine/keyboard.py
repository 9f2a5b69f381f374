"""The computer keyboard in a window: rehearsal moves and a small instrument.

Rehearsal: Space / Right / Page Down = GO (next cue); Left / Page Up = previous; 1..9 and 0 = jump
to cue 1..10; Backspace / Home = restart the cue; Escape = end the show.
Sound: F12 = panic (all sound stops at once); - / = lower / raise the master gain by 1 dB.
F5 = the cue's note source writes anew (a new dice waltz; engine/note_sources.py).
F6 = text entry: the keys type (Backspace deletes, Escape or F6 cancels), Enter sends the text to the
scenes as OSC /showrunner/text would (Padberg's source writes it), into the performance log.
MIDI learn (engine/midi_learn.py): F2 enters or leaves learn mode; in it, Up / Down pick the
parameter, Enter binds the captured controller, Delete unbinds it, Escape leaves learn mode (and
does not end the show).
Instrument ("musical typing", for rehearsal without a piano): the home row plays white keys and the
row above black keys from C4 (MIDI 60): a w s e d f t g y h u j k o l p ; ' ; z / x shift an octave.
"""

from __future__ import annotations

from dataclasses import dataclass

INSTRUMENT_KEYS = {key: semitone for semitone, key in enumerate(
    ["a", "w", "s", "e", "d", "f", "t", "g", "y", "h", "u", "j", "k", "o", "l", "p", ";", "'"])}
BASE_NOTE = 60
VELOCITY = 96
# The moves that act at the start of the next tick, and so go into the performance log with it
# (the others act at once: notes join the MIDI queue; the HUD, the octave and quit are not the show).
TICK_ACTIONS = frozenset({"go", "previous", "jump", "restart", "panic", "gain", "throw"})


@dataclass(frozen=True)
class KeyAction:
    """What a key does: ``kind`` is go, previous, jump (``value`` = cue index), restart, quit,
    note_on / note_off (``value`` = MIDI note), octave (``value`` = +1 / -1), panic, hud (show or
    hide the HUD), gain (``value`` = dB step of the master gain), or MIDI learn: learn (F2: enter
    or leave learn mode), learn_leave (Escape in learn mode), learn_choose (``value`` = -1 / +1:
    the previous / next parameter), learn_bind, learn_unbind; or text entry (F6): text_edit
    (``text`` = the text so far), text_send (Enter: ``text``), text_cancel (Escape)."""

    kind: str
    value: int = 0
    text: str = ""  # text entry: the text so far (text_edit) or the text sent (text_send)


class KeyboardInstrument:
    def __init__(self, base_note: int = BASE_NOTE) -> None:
        self.base_note = base_note
        self._sounding: dict[str, int] = {}
        self.learning = False  # in MIDI learn mode (the show sets it): Escape leaves it, Up/Down/Enter/Delete act
        self.typing: str | None = None  # text entry (F6): the text so far; keys type, not play

    def _text_key(self, key: str) -> KeyAction | None:
        text = self.typing or ""
        if key in ("return", "enter"):
            self.typing = None
            return KeyAction("text_send", text=text)
        if key in ("escape", "f6"):
            self.typing = None
            return KeyAction("text_cancel")
        if key == "backspace":
            self.typing = text[:-1]
        elif key == "space":
            self.typing = text + " "
        elif len(key) == 1 and key.isprintable():
            self.typing = text + key
        else:
            return None
        return KeyAction("text_edit", text=self.typing)

    def _learn_key(self, key: str) -> KeyAction | None:
        if key == "escape":
            return KeyAction("learn_leave")
        if key in ("up", "down"):
            return KeyAction("learn_choose", -1 if key == "up" else 1)
        if key in ("return", "enter"):
            return KeyAction("learn_bind")
        if key == "delete":
            return KeyAction("learn_unbind")
        return None

    def key_down(self, key: str) -> KeyAction | None:
        """Map a pygame key name (``pygame.key.name``) pressed to an action, or None."""
        if self.typing is not None:
            return self._text_key(key)
        if key == "f6":
            self.typing = ""
            return KeyAction("text_edit", text="")
        if key in ("space", "right", "page down"):
            return KeyAction("go")
        if key in ("left", "page up"):
            return KeyAction("previous")
        if key in ("backspace", "home"):
            return KeyAction("restart")
        if key == "f2":
            return KeyAction("learn")
        if self.learning and (action := self._learn_key(key)) is not None:
            return action
        if key == "escape":
            return KeyAction("quit")
        if key == "f12":
            return KeyAction("panic")
        if key == "f1":
            return KeyAction("hud")
        if key == "f5":
            return KeyAction("throw")  # the cue's note source writes anew (a new dice waltz)
        if key in ("-", "="):
            return KeyAction("gain", -1 if key == "-" else 1)
        if len(key) == 1 and key in "0123456789":
            return KeyAction("jump", (int(key) - 1) % 10)
        if key in ("z", "x"):
            step = -12 if key == "z" else 12
            if 0 <= self.base_note + step <= 127 - 17:
                self.base_note += step
            return KeyAction("octave", step // 12)
        if key in INSTRUMENT_KEYS and key not in self._sounding:
            note = self.base_note + INSTRUMENT_KEYS[key]
            self._sounding[key] = note
            return KeyAction("note_on", note)
        return None

    def key_up(self, key: str) -> KeyAction | None:
        note = self._sounding.pop(key, None)
        return KeyAction("note_off", note) if note is not None else None
