"""Mozart's musical dice game (Musikalisches Wuerfelspiel, K. 516f) as a note source
(../shared/REFERENCE-COMPOSITION.md).

A waltz of 16 bars in 3/8: for each of the 8 bar positions of part one and of part two, two dice
are thrown (two dice, not one number in 2..12: 7 is six times as likely as 2) and their sum picks
one of the 176 bars from the tables; each part is played twice. The bars come from
assets/composition/harms_mozart_waltz_bars.csv (LilyPond strings), read by :func:`parse_hand`, a
small parser of the subset the file uses: absolute pitches (c' = middle C, ' an octave up, , an
octave down), ``is``/``es`` for sharps and flats, durations 4 8 16 (a missing one repeats the last),
chords ``<...>``, rests ``r``, two voices ``<<{\\voiceOne ...} \\new Voice {\\voiceTwo ...}>>``, slurs
and ornaments (``\\trill``: the plain note) ignored.

Source ``dice`` (cue ``source = { kind = "dice", tempo = 60, swing = 0.0 }``): ``tempo`` bars a
minute (a dotted crotchet each), ``swing`` delays every second semiquaver by that share of a
semiquaver, ``velocity`` and the hands' MIDI channels. A new waltz at each cue start; the soft
pedal, F5, OSC ``/showrunner/throw`` or the key ``throw_note`` (a key the waltz never plays) throws
again from now.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from engine.errors import UserError
from engine.midi import MidiEvent, NoteOff, NoteOn
from engine.note_sources import NoteSource, SourceParams

BARS = Path(__file__).resolve().parents[2] / "assets" / "composition" / "harms_mozart_waltz_bars.csv"
BAR = Fraction(3, 8)  # of a whole note

# Rows: dice sum 2..12; columns: bar positions I..VIII (the reference's tables).
PART_ONE = (
    (96, 22, 141, 41, 105, 122, 11, 30), (32, 6, 128, 63, 146, 46, 134, 81), (69, 95, 158, 13, 153, 55, 110, 24),
    (40, 17, 113, 85, 161, 2, 159, 100), (148, 74, 163, 45, 80, 97, 36, 107), (104, 157, 27, 167, 154, 68, 118, 91),
    (152, 60, 171, 53, 99, 133, 21, 127), (119, 84, 114, 50, 140, 86, 169, 94), (98, 142, 42, 156, 75, 129, 62, 123),
    (3, 87, 165, 61, 135, 47, 147, 33), (54, 130, 10, 103, 28, 37, 106, 5))
PART_TWO = (
    (70, 121, 26, 9, 112, 49, 109, 14), (117, 39, 126, 56, 174, 18, 116, 83), (66, 139, 15, 132, 73, 58, 145, 79),
    (90, 176, 7, 34, 67, 160, 52, 170), (25, 143, 64, 125, 76, 136, 1, 93), (138, 71, 150, 29, 101, 162, 23, 151),
    (16, 155, 57, 175, 43, 168, 89, 172), (120, 88, 48, 166, 51, 115, 72, 111), (65, 77, 19, 82, 137, 38, 149, 8),
    (102, 4, 31, 164, 144, 59, 173, 78), (35, 20, 108, 92, 12, 124, 44, 131))

STEPS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
TOKEN = re.compile(r"<<|>>|\{|\}|\\\w+|<([^<>]*)>(\d+)?|(r)(\d+)?|([a-g](?:is|es|s)*[',]*)(\d+)?|[()~|]|\S+")


@dataclass(frozen=True)
class Note:
    """A note of a bar: MIDI ``pitch``, ``start`` and ``length`` in whole notes from the bar's start."""

    pitch: int
    start: Fraction
    length: Fraction


def pitch_of(name: str) -> int:
    """LilyPond absolute pitch -> MIDI (c = 48, c' = 60)."""
    match = re.fullmatch(r"([a-g])((?:is|es|s)*)([',]*)", name)
    if match is None:
        raise ValueError(f"not a pitch: {name!r}")
    letter, accidentals, octaves = match.groups()
    shift = accidentals.count("is") - accidentals.count("es")
    if accidentals in ("s",) and letter in "ae":  # "as", "es": a flat, e flat
        shift = -1
    return 48 + STEPS[letter] + shift + 12 * octaves.count("'") - 12 * octaves.count(",")


class _Reader:
    """Recursive descent over the tokens: a sequence of notes, chords, rests, ``{ ... }`` groups
    (in turn) and ``<< ... >>`` groups (side by side: each from the same time, the group as long as
    its longest)."""

    def __init__(self, text: str) -> None:
        self.tokens = [t for t in TOKEN.finditer(text)]
        self.at = 0
        self.length = Fraction(1, 8)  # a missing duration repeats the last one

    def sequence(self, time: Fraction, until: str | None) -> tuple[list[Note], Fraction]:
        notes: list[Note] = []
        while self.at < len(self.tokens):
            token = self.tokens[self.at]
            text = token.group(0)
            if text == until:
                self.at += 1
                return notes, time
            self.at += 1
            chord, chord_length, rest, rest_length, name, name_length = token.groups()
            if text == "{":
                more, time = self.sequence(time, "}")
                notes += more
            elif text == "<<":
                end = time
                while self.at < len(self.tokens) and self.tokens[self.at].group(0) != ">>":
                    if self.tokens[self.at].group(0) == "{":
                        self.at += 1
                        more, finished = self.sequence(time, "}")
                        notes += more
                        end = max(end, finished)
                    else:
                        self.at += 1  # \new Voice and the like between the voices
                if self.at >= len(self.tokens):
                    raise ValueError("'<<' without '>>'")
                self.at += 1
                time = end
            elif chord is not None:
                self.length = Fraction(1, int(chord_length)) if chord_length else self.length
                notes += [Note(pitch_of(p), time, self.length) for p in chord.split()]
                time += self.length
            elif rest is not None:
                self.length = Fraction(1, int(rest_length)) if rest_length else self.length
                time += self.length
            elif name is not None:
                self.length = Fraction(1, int(name_length)) if name_length else self.length
                notes.append(Note(pitch_of(name), time, self.length))
                time += self.length
            elif text.startswith("\\") or text in ("(", ")", "~", "|", "Voice"):
                continue  # ornaments, voices' names, slurs: the plain notes
            else:
                raise ValueError(f"unexpected {text!r}")
        if until is not None:
            raise ValueError(f"missing {until!r}")
        return notes, time


def parse_hand(text: str) -> list[Note]:
    """One hand of a bar (a LilyPond string of the file's subset) -> its notes, by start."""
    notes, _ = _Reader(text).sequence(Fraction(0), None)
    # two voices striking the same key at once (bar 5's bass) are one note, the longer
    kept: dict[tuple[int, Fraction], Note] = {}
    for note in notes:
        other = kept.get((note.pitch, note.start))
        if other is None or note.length > other.length:
            kept[(note.pitch, note.start)] = note
    return sorted(kept.values(), key=lambda n: (n.start, n.pitch))


@lru_cache(maxsize=4)
def load_bars(path: Path = BARS) -> dict[int, tuple[list[Note], list[Note]]]:
    """Every bar of the CSV: bar number -> (right hand, left hand); a one-line UserError naming
    the line for a broken one."""
    bars: dict[int, tuple[list[Note], list[Note]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            for row in reader:
                line = reader.line_num
                try:
                    number = int(row["bar_index"])
                    right, left = parse_hand(row["piano_right_hand"]), parse_hand(row["piano_left_hand"])
                except (KeyError, TypeError, ValueError) as error:
                    raise UserError(f"{path}, line {line}: not a bar ({error})") from None
                for hand in (right, left):
                    if hand and max(n.start + n.length for n in hand) > BAR:
                        raise UserError(f"{path}, line {line}: bar {number} is longer than 3/8")
                bars[number] = (right, left)
    except OSError as error:
        raise UserError(f"{path}: {error.strerror}") from None
    missing = sorted(set(range(1, 177)) - set(bars))
    if missing:
        raise UserError(f"{path}: bars missing: {missing[:5]}")
    return bars


def throw(seed: int) -> np.ndarray:
    """(16, 2) dice, 1..6: two for each bar position, part one then part two."""
    return np.random.default_rng(seed).integers(1, 7, size=(16, 2))


def chosen_bars(dice: np.ndarray) -> list[int]:
    """The 16 bar numbers the dice pick."""
    sums = dice.sum(axis=1)
    return [(PART_ONE if position < 8 else PART_TWO)[sums[position] - 2][position % 8] for position in range(16)]


class DiceParams(SourceParams):
    tempo: float = Field(60.0, ge=10.0, le=240.0, description="bars a minute")
    swing: float = Field(0.0, ge=0.0, le=0.9, description="of a semiquaver, every second one late")
    velocity: int = Field(80, ge=1, le=127)
    right_channel: int = Field(0, ge=0, le=15)
    left_channel: int = Field(0, ge=0, le=15)
    repeats: bool = True
    throw_note: int | None = Field(None, description="a piano key that throws again (outside the "
                                                      "waltz's range 36..86: A0 = 21, say)")

    @field_validator("throw_note")
    @classmethod
    def _outside_the_waltz(cls, note: int | None) -> int | None:
        if note is not None and not (0 <= note < 36 or 86 < note <= 127):
            raise ValueError("a key outside the waltz's range 36..86 (its own notes would throw again)")
        return note


class DiceWaltz(NoteSource):
    kind = "dice"
    Params = DiceParams

    def __init__(self, params: DiceParams) -> None:
        super().__init__(params)
        self.bars = load_bars()
        self.dice = np.zeros((16, 2), int)
        self.chosen: list[int] = []
        self.order: list[int] = []  # positions as played (each part twice)

    def write(self, seed: int) -> list[tuple[float, MidiEvent]]:
        p = self.params
        self.dice = throw(seed)
        self.chosen = chosen_bars(self.dice)
        halves = [list(range(8)), list(range(8, 16))]
        self.order = [i for half in halves for i in (half * 2 if p.repeats else half)]
        seconds_per_whole = 60.0 / p.tempo / float(BAR)
        events: list[tuple[float, int, MidiEvent]] = []
        for played, position in enumerate(self.order):
            right, left = self.bars[self.chosen[position]]
            for hand, channel in ((right, p.right_channel), (left, p.left_channel)):
                for note in hand:
                    start = played * BAR + note.start
                    if p.swing and (note.start / Fraction(1, 16)).denominator == 1 and (note.start / Fraction(1, 16)) % 2 == 1:
                        start += Fraction(1, 16) * Fraction(p.swing).limit_denominator(1000)
                    on = float(start) * seconds_per_whole
                    off = float(start + note.length) * seconds_per_whole - 0.002  # a breath before a repeat
                    events.append((on, 1, NoteOn(note.pitch, p.velocity, channel=channel)))
                    events.append((max(on + 0.001, off), 0, NoteOff(note.pitch, 0, channel=channel)))
        events.sort(key=lambda e: (e[0], e[1]))
        return [(at, event) for at, _, event in events]

    def throws_on(self, event: MidiEvent) -> bool:
        note = self.params.throw_note
        return note is not None and isinstance(event, NoteOn) and event.velocity > 0 and event.note == note

    def bar_at(self, seconds: float) -> int:
        """The index (into :attr:`order`) of the bar playing ``seconds`` after the waltz began."""
        return int(seconds * self.params.tempo / 60.0)
