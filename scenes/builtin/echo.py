"""Echo: every note played comes back ``delay`` seconds later, ``interval`` semitones away, sent
through MIDI out (a hardware synth, or a Disklavier that then plays it acoustically) and drawn as
the pulse scene draws notes. The engine's smallest example of a scene that emits."""

from __future__ import annotations

from collections import deque

from pydantic import Field

from engine.midi import MidiEvent, NoteOff, NoteOn
from scenes.builtin.pulse import Pulse, PulseParams


class EchoParams(PulseParams):
    delay: float = Field(0.5, ge=0.0, le=30.0, description="seconds between a note and its echo")
    interval: int = Field(12, ge=-48, le=48, description="semitones the echo is moved by")
    velocity_scale: float = Field(0.8, gt=0.0, le=1.0, description="echo velocity / played velocity")
    channel: int = Field(1, ge=1, le=16, description="MIDI channel the echoes go out on")


class Echo(Pulse):
    name = "echo"
    Params = EchoParams

    def enter(self) -> None:
        super().enter()
        self.time = 0.0
        self.due: deque[tuple[float, MidiEvent]] = deque()  # echoes waiting, in time order

    def on_midi(self, event: MidiEvent) -> bool:
        p = self.params
        note = event.note + p.interval if isinstance(event, (NoteOn, NoteOff)) else -1
        if 0 <= note <= 127:
            if isinstance(event, NoteOn):
                velocity = max(1, round(event.velocity * p.velocity_scale))
                self.due.append((self.time + p.delay, NoteOn(note, velocity, p.channel - 1)))
            else:
                self.due.append((self.time + p.delay, NoteOff(note, 0, p.channel - 1)))
        return super().on_midi(event)

    def tick(self, dt: float) -> None:
        super().tick(dt)
        self.time += dt
        while self.due and self.due[0][0] <= self.time + 1e-9:
            _, echo = self.due.popleft()
            self.context.emit(echo)
            super().on_midi(echo)  # the echo lights its bar too
