"""Bounding a tick's input, so a flood (a faulty controller, a MIDI loop, an OSC sender gone wild)
never freezes the picture: what a tick takes in, and what it leaves out and counts as an overload."""

from __future__ import annotations

from engine.events import OscMessage
from engine.midi import SOFT, SOSTENUTO, SUSTAIN, ControlChange, NoteOff, NoteOn, PitchBend


def _setting(message: OscMessage) -> bool:
    """A scene's parameter ("/showrunner/param [cue] name value") or an instrument's
    ("/showrunner/sound instrument parameter value")."""
    return (message.address == "/showrunner/param" and len(message.args) in (2, 3)) or \
        (message.address == "/showrunner/sound" and len(message.args) == 3)


def latest_params(messages: list[OscMessage]) -> list[OscMessage]:
    """The tick's OSC messages with each parameter's earlier settings in the same tick left out:
    only its latest value counts, so a controller streaming values costs one setting a tick."""
    latest: dict[tuple, int] = {}
    for index, message in enumerate(messages):
        if _setting(message):
            latest[(message.address, *message.args[:-1])] = index
    kept = set(latest.values())
    return [m for i, m in enumerate(messages) if i in kept or not _setting(m)]


PEDALS = frozenset({SUSTAIN, SOSTENUTO, SOFT})
STREAMS_PER_EVENT = 4  # a tick takes this many streams' latest values per event of its budget


def _streaming(event, kept_controllers) -> bool:
    return isinstance(event, PitchBend) or (isinstance(event, ControlChange)
                                            and event.control not in kept_controllers)


def bound_input(due: list, budget: int, kept_controllers: frozenset | set = PEDALS,
                held: set | None = None) -> tuple[list, int]:
    """The tick's input bounded, so a flood never freezes the picture: a streaming controller or
    pitch bend keeps only its latest value in the tick (the sound's own reader of the port has
    them all), and up to ``STREAMS_PER_EVENT`` x ``budget`` streams' values pass, apart from the
    budget (a file's or a synth's reset sets a few controllers on all 16 channels at once, and
    that must not crowd out its notes); ``kept_controllers`` (pedals, advance triggers: every
    change matters) always pass, and so do note-offs, but for a tick over budget only those of
    notes taken in (``held``: (channel, note) pairs; those of note-ons left out mean nothing);
    beyond ``budget`` events, the rest (note-ons, program changes) are left out. Returns (what
    passes, how many were left out)."""
    streaming = [_streaming(event, kept_controllers) for _, event in due]
    latest: dict[tuple, int] = {}
    for index, (_, event) in enumerate(due):
        if streaming[index]:
            if isinstance(event, PitchBend):
                latest[("bend", event.channel)] = index
            else:
                latest[("cc", event.channel, event.control)] = index
    newest = set(latest.values())
    over = len(due) - sum(streaming) > budget
    held = set(held) if held is not None else None
    kept, dropped, streams_kept = [], 0, 0
    for index, item in enumerate(due):
        event = item[1]
        if streaming[index]:
            if index not in newest:
                continue  # an older value of a stream: not an input left out, just superseded
            if streams_kept < STREAMS_PER_EVENT * budget:
                kept.append(item)
                streams_kept += 1
            else:
                dropped += 1
            continue
        if isinstance(event, NoteOff) and over and held is not None:
            if (event.channel, event.note) in held:
                held.discard((event.channel, event.note))
                kept.append(item)
            else:
                dropped += 1
            continue
        always = isinstance(event, (NoteOff, ControlChange))  # a controller here is a kept one
        if always or len(kept) - streams_kept < budget:
            kept.append(item)
            if isinstance(event, NoteOn) and held is not None:
                held.add((event.channel, event.note))
        else:
            dropped += 1
    return kept, dropped
