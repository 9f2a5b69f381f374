"""Mozart's dice game (scenes/composition/dice.py; issue 23): the bars read from the CSV equal a
reading of a dozen of them written here by hand; seeded dice pick the tables' bars; the notes a
waltz plays are its bars' notes; two dice give the triangular distribution; a broken line is one
line of error naming it."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
from scipy.stats import chisquare

from engine.errors import UserError
from engine.midi import NoteOff, NoteOn
from engine.note_sources import make_source
from scenes.composition.dice import BAR, BARS, PART_ONE, PART_TWO, DiceParams, DiceWaltz, chosen_bars, load_bars, throw

Q, S, C = F(1, 8), F(1, 16), F(1, 4)  # quaver, semiquaver, crotchet (of a whole note)

# Read by hand from the CSV's LilyPond strings (c' = 60): bar -> (right hand, left hand), each
# note (MIDI pitch, start, length) in whole notes.
BY_HAND = {
    1: ([(77, 0, Q), (74, Q, Q), (79, 2 * Q, Q)], [(53, 0, Q), (50, Q, Q), (55, 2 * Q, Q)]),
    2: ([(69, 0, Q), (66, Q, S), (67, Q + S, S), (71, 2 * Q, S), (79, 2 * Q + S, S)], [(47, 0, C), (55, 0, C)]),
    3: ([(79, 0, Q), (72, Q, Q), (76, 2 * Q, Q)], [(48, 0, C), (52, 0, C)]),
    4: ([(79, 0, Q), (74, Q, C)], [(43, 0, S), (47, S, S), (55, Q, Q), (47, 2 * Q, Q)]),
    5: ([(67, 0, C), (71, 0, C), (74, 0, C), (79, 0, C)],
        [(43, 0, Q), (55, Q, S), (59, Q, S), (53, Q + S, S), (55, Q + S, S), (52, 2 * Q, S), (54, 2 * Q, S),
         (50, 2 * Q + S, S), (52, 2 * Q + S, S)]),
    18: ([(67, 0, Q), (72, Q, Q), (76, 2 * Q, Q)], [(48, 0, C), (52, 0, C), (48, C, Q), (55, C, Q)]),
    22: ([(76, 0, Q), (72, Q, Q), (67, 2 * Q, Q)], [(48, 0, C)]),
    65: ([(74, 0, S), (69, S, S), (74, Q, Q), (78, 2 * Q, Q)], [(50, 0, C), (54, 0, C)]),
    96: ([(76, 0, Q), (72, Q, Q), (67, 2 * Q, Q)], [(48, 0, C)]),
    141: ([(74, 0, S), (76, S, S), (77, Q, S), (74, Q + S, S), (72, 2 * Q, S), (71, 2 * Q + S, S)],
          [(47, 0, C), (55, 0, C), (43, C, Q)]),
}


def as_tuples(notes):
    return sorted((n.pitch, n.start, n.length) for n in notes)


@pytest.mark.parametrize("bar", sorted(BY_HAND))
def test_the_bars_read_as_by_hand(bar):
    right, left = load_bars()[bar]
    expected_right, expected_left = BY_HAND[bar]
    assert as_tuples(right) == sorted((p, F(s), F(length)) for p, s, length in expected_right)
    assert as_tuples(left) == sorted((p, F(s), F(length)) for p, s, length in expected_left)


def test_every_bar_fits_its_3_8_and_there_are_176():
    bars = load_bars()
    assert sorted(bars) == list(range(1, 177))
    for right, left in bars.values():
        assert right and left
        assert all(n.start + n.length <= BAR for n in right + left)


def test_seeded_dice_pick_the_tables_bars():
    dice = np.array([[1, 1], [1, 2], [2, 2], [6, 6], [3, 4], [5, 6], [1, 6], [2, 3],
                     [6, 6], [1, 1], [4, 4], [2, 5], [3, 3], [6, 5], [1, 3], [2, 6]])
    # sums 2 3 4 12 7 11 7 5 | 12 2 8 7 6 11 4 8, read off the reference's tables by hand
    assert chosen_bars(dice) == [96, 6, 158, 103, 154, 47, 118, 100, 35, 121, 57, 29, 76, 59, 145, 172]
    seeded = throw(123)
    assert np.array_equal(seeded, throw(123)) and not np.array_equal(seeded, throw(124))
    assert seeded.shape == (16, 2) and seeded.min() >= 1 and seeded.max() <= 6
    for position, (a, b) in enumerate(seeded):
        table = PART_ONE if position < 8 else PART_TWO
        assert chosen_bars(seeded)[position] == table[a + b - 2][position % 8]


def test_two_dice_give_the_triangular_distribution():
    sums = np.concatenate([throw(seed).sum(axis=1) for seed in range(625)])  # 10,000 throws
    assert len(sums) == 10_000
    counts = np.bincount(sums, minlength=13)[2:]
    expected = np.array([1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1]) / 36 * len(sums)
    assert chisquare(counts, expected).pvalue > 0.001
    assert counts[5] > 4 * counts[0]  # 7 six times as likely as 2: not one number in 2..12


def test_a_waltz_plays_its_bars_notes_each_half_twice():
    waltz = DiceWaltz(DiceParams(tempo=60.0))
    events = waltz.write(7)
    assert waltz.order == list(range(8)) * 2 + list(range(8, 16)) * 2
    bars = load_bars()
    expected = []
    for played, position in enumerate(waltz.order):
        right, left = bars[waltz.chosen[position]]
        expected += [(round(float(played * BAR + n.start) * 8 / 3, 6), n.pitch) for n in right + left]
    ons = [(round(at, 6), e.note) for at, e in events if isinstance(e, NoteOn)]
    assert sorted(ons) == sorted(expected)  # a bar a second at 60 bars a minute
    offs = [e for _, e in events if isinstance(e, NoteOff)]
    assert len(offs) == len(ons)
    assert [at for at, _ in events] == sorted(at for at, _ in events)
    assert max(at for at, _ in events) < 32.0


def test_a_bad_source_or_a_broken_line_is_one_line(tmp_path):
    with pytest.raises(UserError, match="unknown note source kind 'dies'"):
        make_source({"kind": "dies"}, "cue 'x'")
    with pytest.raises(UserError, match=r"unknown note source kind \['dice'\]"):  # a list: not a kind
        make_source({"kind": ["dice"]}, "cue 'x'")
    with pytest.raises(UserError, match=r"source.tempo"):
        make_source({"kind": "dice", "tempo": -1}, "cue 'x'")
    broken = tmp_path / "bars.csv"
    lines = BARS.read_text().splitlines()
    lines[7] = '"7","c\'\'8 <e\'\' g\'\'","c4 r8"'
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as error:
        load_bars(broken)
    assert "line 8" in str(error.value) and "\n" not in str(error.value)


def test_a_new_writing_releases_the_notes_sounding_as_its_first_notes():
    # (engine.note_sources.SourcePlayer) The note-offs of a throw are the player's own next notes,
    # so a state saved, or a catch-up made, between the throw and the next tick still has them.
    from engine.note_sources import SourcePlayer

    player = SourcePlayer(DiceWaltz(DiceParams(tempo=60.0)), "waltz", 1787)
    player.throw(0.0)
    played = player.due(2.5)
    sounding = sorted(player.sounding)
    assert played and sounding
    player.throw(2.5, releasing=player.release(2.5))
    assert player.sounding == set()
    first = player.due(2.5)
    assert [(at, e.channel, e.note) for at, e in first if isinstance(e, NoteOff)] == \
        [(2.5, channel, note) for channel, note in sounding]
    assert all(isinstance(e, NoteOff) for _, e in first[:len(sounding)])
