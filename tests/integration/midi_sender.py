"""A stand-in for a MIDI piano: plays a MIDI file (or a list of notes) out of a JACK MIDI port.

Run as its own process by the tests: ``python midi_sender.py PORT_NAME --file F [--seconds S]
[--from S] [--wait-for PATH] [--late] [--delay S] [--hold S] [--send-log PATH]``. It creates a virtual JACK
output port (with ``--late``, only after the wait), waits until PATH exists and is non-empty (the
engine has started), plays the file in real time from its own tempo map, holds the port open for
``--hold`` seconds, then exits (taking its port with it, like an unplugged piano). With
``--send-log`` it writes, as JSON, the ``time.monotonic()`` at which it handed each message to JACK.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import mido
import rtmidi


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port")
    parser.add_argument("--file")
    parser.add_argument("--notes", help="comma-separated MIDI notes to play 50 ms apart")
    parser.add_argument("--seconds", type=float, default=None, help="play only this much of the file")
    parser.add_argument("--from", dest="start", type=float, default=0.0,
                        help="play the file from this many seconds in (before: only its controller and "
                             "program changes, sent at once)")
    parser.add_argument("--wait-for", default=None)
    parser.add_argument("--hold", type=float, default=0.5)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before playing")
    parser.add_argument("--late", action="store_true", help="create the port only after --wait-for")
    parser.add_argument("--send-log", default=None, help="write each message's send time (JSON) here")
    parser.add_argument("--flood", type=float, default=None, metavar="SECONDS",
                        help="first a flood: 10,000 messages a second for SECONDS (a third note-ons, "
                             "a third note-offs, a third controller 1), then --notes or --file")
    parser.add_argument("--after-flood", type=float, default=1.0, help="seconds between the flood and the rest")
    args = parser.parse_args()

    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="piano-sim")
    if not args.late:
        out.open_virtual_port(args.port)
    if args.wait_for:
        deadline = time.monotonic() + 30
        while not (os.path.exists(args.wait_for) and os.path.getsize(args.wait_for) > 0):
            if time.monotonic() > deadline:
                print("engine never started", file=sys.stderr)
                return 1
            time.sleep(0.02)
        time.sleep(0.3)  # let the engine's connection settle
    if args.late:
        out.open_virtual_port(args.port)
    time.sleep(args.delay)
    if args.flood:
        flood(out, args.flood)
        time.sleep(args.after_flood)
    if args.file:
        messages = []
        at = 0.0
        skipped = set()  # (channel, note) of notes begun before --from: their note-offs go too
        for msg in mido.MidiFile(args.file):
            at += msg.time
            if args.seconds is not None and at > args.seconds:
                break
            if msg.is_meta or msg.type == "sysex":
                continue
            if at < args.start:  # the piano's state at --from (pedals, programs); no notes
                if msg.type == "note_on" and msg.velocity > 0:
                    skipped.add((msg.channel, msg.note))
                elif msg.type in ("control_change", "program_change"):
                    messages.append((0.0, msg.bytes()))
                continue
            if msg.type in ("note_on", "note_off") and (msg.channel, msg.note) in skipped:
                if msg.type == "note_off" or msg.velocity == 0:
                    skipped.discard((msg.channel, msg.note))
                    continue
                skipped.discard((msg.channel, msg.note))  # struck again: it sounds from here
            messages.append((at - args.start, msg.bytes()))
    else:
        messages = []
        for index, note in enumerate(int(n) for n in args.notes.split(",")):
            messages += [(index * 0.05, [0x90, note, 100]), (index * 0.05 + 0.025, [0x80, note, 0])]
    start = time.perf_counter()
    sent = []
    for at, data in messages:
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        out.send_message(data)
        sent.append(time.monotonic())
    time.sleep(args.hold)
    if args.send_log:
        with open(args.send_log, "w") as log:
            json.dump(sent, log)
    out.close_port()
    return 0


def flood(out, seconds: float, rate: int = 10_000) -> None:
    """What a faulty controller or a MIDI loop sends: ``rate`` messages a second."""
    start, sent = time.perf_counter(), 0
    while sent < seconds * rate:
        due = min(int((time.perf_counter() - start) * rate), int(seconds * rate))
        while sent < due:
            note = 36 + sent % 48
            kind = sent % 3
            out.send_message([0x90, note, 90] if kind == 0 else [0x80, note, 0] if kind == 1
                             else [0xB0, 1, sent % 128])
            sent += 1
        time.sleep(0.0005)


if __name__ == "__main__":
    sys.exit(main())
