"""Harriet Padberg's text-to-music mapping (1964) as a note source (../shared/REFERENCE-COMPOSITION.md).

**Pitch.** Letters sound on a scale of 24 equal *frequency* steps of 440/24 Hz from A = 440 Hz to
861.66 Hz (not equal-tempered): A 440, B 458.33, ... U 806.66, V and W 825, X 843.33, Y and Z 861.66
(the reference's table; I alone on its step). The frequencies lie between keys, so the source plays
them on 24 keys of their own: step k is MIDI note ``base_note + k`` (69 = A4 up), which the
``padberg_text`` scene retunes to exactly that frequency (``AudioOut.tune_note``) for the cue:
every instrument that plays by the show's tuning then sounds the table's frequencies.

**Rhythm.** Each letter lasts a value of a cycle derived from the text (PyPadberg's rule, as its
author describes it): the least common multiple of the counts of vowels, of the other characters
(spaces, digits and punctuation count there too) and of all characters, with 22 and 22; that
number's factors; every three of them with no common factor; the values those triples use, sorted,
taken in pairs, each pair's difference. "harriet padberg" gives 1, 2, 4, 4, 8, 22, 44, 165. A value
lasts ``unit`` seconds.

**Text.** From the cue (``text``) or sent on stage (OSC ``/showrunner/text``): lower-cased, accents
folded to their letter (é -> e, ß -> ss); anything else that is not a-z (digits, punctuation, emoji)
sounds nothing but counts in the rhythm's character counts. A text with no letter writes silence.
"""

from __future__ import annotations

import math
import unicodedata
from functools import reduce
from itertools import combinations

from pydantic import Field

from engine.midi import MidiEvent, NoteOff, NoteOn
from engine.note_sources import NoteSource, SourceParams

STEP_HZ = 440.0 / 24
LETTER_STEP = {letter: step for step, letter in enumerate("abcdefghijklmnopqrstuv")} | \
    {"w": 21, "x": 22, "y": 23, "z": 23}
VOWELS = set("aeiou")
PITCHES = 22  # PyPadberg's two pitch counts, both in the rhythm's multiple


def letter_hz(letter: str) -> float:
    return 440.0 + STEP_HZ * LETTER_STEP[letter]


def fold(text: str) -> str:
    """Lower case with accents folded to their letters (NFKD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def rhythm_cycle(text: str) -> list[int]:
    """The cycle of rhythm values the text gives (see the module's docstring)."""
    text = fold(text)
    vowels = sum(1 for c in text if c in VOWELS)
    characters = len(text)
    counts = [n for n in (vowels, characters - vowels, characters, PITCHES, PITCHES) if n > 0]
    multiple = reduce(math.lcm, counts, 1)
    factors = sorted({d for i in range(1, math.isqrt(multiple) + 1) if multiple % i == 0
                      for d in (i, multiple // i)})
    used = sorted({v for triple in combinations(factors, 3) if math.gcd(*triple) == 1 for v in triple})
    return [b - a for a, b in zip(used[::2], used[1::2])] or [1]


class PadbergParams(SourceParams):
    text: str = Field("harriet padberg", max_length=2000)
    unit: float = Field(0.05, gt=0.0, le=2.0, description="seconds a rhythm value lasts")
    base_note: int = Field(69, ge=0, le=104, description="the key of step 0 (A, 440 Hz)")
    velocity: int = Field(80, ge=1, le=127)
    gap: float = Field(0.02, ge=0.0, le=1.0, description="seconds of silence before each letter")


class PadbergText(NoteSource):
    kind = "padberg"
    Params = PadbergParams

    def __init__(self, params: PadbergParams) -> None:
        super().__init__(params)
        self.text = params.text
        self.letters: list[tuple[float, str, float, int]] = []  # (start s, letter, Hz, rhythm value)
        self.cycle: list[int] = []

    def take_text(self, text: str) -> bool:
        self.text = text[:2000]
        return True

    def key(self, letter: str) -> int:
        return self.params.base_note + LETTER_STEP[letter]

    def write(self, seed: int) -> list[tuple[float, MidiEvent]]:
        p = self.params
        self.cycle = rhythm_cycle(self.text)
        events: list[tuple[float, MidiEvent]] = []
        self.letters = []
        time, index = 0.0, 0
        for letter in fold(self.text):
            if letter not in LETTER_STEP:
                continue
            value = self.cycle[index % len(self.cycle)]
            index += 1
            start, length = time + p.gap, value * p.unit
            self.letters.append((start, letter, letter_hz(letter), value))
            events.append((start, NoteOn(self.key(letter), p.velocity)))
            events.append((start + length, NoteOff(self.key(letter), 0)))
            time = start + length
        return events
