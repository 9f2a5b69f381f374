"""Benchmark: from a MIDI note-on to the first sound of its overtones, through JACK.

A JACK client (:class:`~bench.jack_recorder.JackRecorder`) owns a MIDI output port and records the
audio process's output. The audio process reads that port itself (``LiveAudio(midi_input=...)``),
as it reads the piano's port on stage. The recorder writes each note-on at frame 0 of a cycle and
remembers that cycle's JACK frame time; the first recorded sample above a small threshold after it
is the note's first sound. Both ends are on JACK's own frame clock, so the latency is exact to the
frame, with no wall clock involved.
"""

from __future__ import annotations

import random
import time

import numpy as np

from bench.jack_recorder import JackRecorder
from bench.jack_server import JackUnavailable, jack_server
from bench.result import BenchResult, Figure
from engine.audio.config import MixerConfig
from engine.audio.live import LiveAudio

SAMPLE_RATE = 48000
PERIODS = (256, 128)
NOTES = 200  # per period size
WARM_UP = 5  # untimed notes first
HOLD = 0.06  # seconds a note is held
GAP = (0.10, 0.16)  # seconds of silence after the release before the next note-on, uniform
THRESHOLD = 1e-3  # -60 dBFS: the first sample above it is the note's first sound
GOAL_MARGIN_MS = 2.0  # goal: p99 <= one period + this


class StampedRecorder(JackRecorder):
    """A recorder that also notes, for every cycle, (frames recorded before it, its JACK frame
    time), so a frame time maps to the capture even when the recorder missed cycles (an xrun)."""

    def __init__(self, *args, **kwargs) -> None:
        self.cycle_starts: list[tuple[int, int]] = []
        super().__init__(*args, **kwargs)

    def _process(self, frames: int) -> None:
        self.cycle_starts.append((self.written, self.client.last_frame_time))
        super()._process(frames)


def _measure(period: int) -> tuple[np.ndarray, dict[str, int], str, int]:
    """(latency of each note-on in frames, notes not measurable by reason, the port reading the
    recorder's MIDI, underruns of the audio process)."""
    config = MixerConfig(sample_rate=SAMPLE_RATE, block_size=period, partials=8, envelope="adsr",
                         attack=0.005, decay=0.05, sustain=0.7, release=0.02, bass_release=0.02)
    rng = random.Random(period)
    with jack_server(SAMPLE_RATE, period):
        recorder = StampedRecorder(seconds=(NOTES + WARM_UP) * (HOLD + GAP[1] + 0.05) + 10, midi=True)
        audio = LiveAudio(config, midi_input="recorder:midi_out", midi_api="jack")
        try:
            audio.start()
            if not audio.wait_running(15.0):
                raise RuntimeError(f"the audio process did not start at {period} frames per period")
            if not recorder.wait_connected(10.0):
                raise RuntimeError("the recorder found no PortAudio output ports")
            deadline = time.monotonic() + 10.0
            while not recorder.client.get_all_connections(recorder.midi_out):
                if time.monotonic() > deadline:
                    raise RuntimeError("the audio process did not connect to recorder:midi_out")
                time.sleep(0.05)
            reader = recorder.client.get_all_connections(recorder.midi_out)[0].name
            sends_before = len(recorder.midi_sent_at)
            mark = recorder.mark()
            for _ in range(WARM_UP + NOTES):
                note = rng.randint(48, 84)
                recorder.send_midi(0x90, note, 100)
                time.sleep(HOLD)
                recorder.send_midi(0x80, note, 0)
                time.sleep(config.release + rng.uniform(*GAP))
            time.sleep(0.1)
            heard = recorder.since(mark)
            sent = recorder.midi_sent_at[sends_before:]
            underruns = audio.health()["xruns"]
        finally:
            audio.close()
            recorder.close()
    if len(sent) != 2 * (WARM_UP + NOTES):
        raise RuntimeError(f"the recorder sent {len(sent)} MIDI messages, expected {2 * (WARM_UP + NOTES)}")
    loud = np.abs(heard).max(axis=1) > THRESHOLD
    cycles = np.array([c for c in recorder.cycle_starts if c[0] >= mark], dtype=np.int64)
    recorded, frame_times = cycles[:, 0] - mark, cycles[:, 1]  # per cycle: capture index, JACK frame
    latencies, unmeasured = [], {"not from silence": 0, "not heard": 0, "recorder gap": 0}
    for sent_frame in sent[2 * WARM_UP::2]:  # the note-ons
        cycle = int(np.searchsorted(frame_times, sent_frame))
        if cycle == 0 or cycle >= len(frame_times) or frame_times[cycle] != sent_frame \
                or frame_times[cycle - 1] != sent_frame - period:
            unmeasured["recorder gap"] += 1
            continue
        start = int(recorded[cycle])
        if loud[start - period:start].any():
            unmeasured["not from silence"] += 1
            continue
        found = np.flatnonzero(loud[start:start + SAMPLE_RATE // 2])
        if found.size == 0:
            unmeasured["not heard"] += 1
            continue
        onset = start + int(found[0])
        onset_cycle = int(np.searchsorted(recorded, onset, side="right")) - 1
        if frame_times[onset_cycle] - sent_frame != recorded[onset_cycle] - start:
            unmeasured["recorder gap"] += 1  # a cycle went unrecorded: the onset may lie in it
            continue
        latencies.append(int(frame_times[onset_cycle] + onset - recorded[onset_cycle] - sent_frame))
    return np.asarray(latencies), unmeasured, reader, underruns


def run() -> BenchResult:
    result = BenchResult(
        key="audio-latency",
        title="MIDI note-on to first sound through JACK",
        method=(f"For each period size ({' and '.join(map(str, PERIODS))} frames at {SAMPLE_RATE} Hz) a "
                "private `jackd --no-realtime -d dummy -p PERIOD` runs. A JACK client of the "
                "benchmark (`JackRecorder(midi=True)`) owns the MIDI output port `recorder:midi_out` "
                "and records the PortAudio output ports; the audio process (`LiveAudio`, blocks of "
                "the period, `midi_input='recorder:midi_out'`, `midi_api='jack'`) reads that port "
                "with its own rtmidi reader, as it reads the piano on stage, and plays 8-partial "
                "ADSR voices (attack 5 ms, release 20 ms at every pitch). The recorder writes each "
                "note-on at frame offset 0 of its next process cycle and keeps that cycle's JACK frame time; "
                f"{NOTES} note-ons (after {WARM_UP} unmeasured ones; notes 48-84, velocity 100) are "
                f"held {HOLD * 1000:.0f} ms and followed by {GAP[0] * 1000:.0f}-{GAP[1] * 1000:.0f} "
                "ms of silence after the release, so each starts from silence (checked: one period "
                f"before it under the threshold). The first recorded frame whose level exceeds "
                f"{THRESHOLD:g} (-60 dBFS) in either channel is the onset; latency = onset frame - "
                "sent frame, in ms. Both are JACK frame times, so no wall clock is involved; the "
                "recorder notes the frame time of every cycle it records, so a note whose onset "
                "could lie in a cycle it missed (an xrun) is left out and counted. Within "
                "one JACK cycle the graph runs PortAudio before the recorder (it records PortAudio) "
                "and the recorder before the reader (it feeds it), so the block computed in the "
                "sending cycle can never hold the note: one period is the floor. The output "
                "latency of a real sound card (JACK's playback buffers) comes on top and is not "
                "part of this figure."),
        goal=(f"Goal: p99 <= one period + {GOAL_MARGIN_MS:g} ms: the note sounds in the next block "
              "the audio process computes, not a block later."))
    for period in PERIODS:
        try:
            frames, unmeasured, reader, underruns = _measure(period)
        except JackUnavailable as error:
            result.error = str(error)
            return result
        if frames.size == 0:
            raise RuntimeError(f"no note-on was heard at {period} frames per period")
        period_ms = 1000 * period / SAMPLE_RATE
        ms = frames * 1000 / SAMPLE_RATE
        goal_ms = period_ms + GOAL_MARGIN_MS
        p99 = float(np.percentile(ms, 99))
        tag = f"{period} frames ({period_ms:.2f} ms)"
        result.figures += [
            Figure(f"{tag}: notes measured", frames.size, "count", f"= {NOTES}", frames.size == NOTES),
            Figure(f"{tag}: latency p50", float(np.median(ms)), "ms"),
            Figure(f"{tag}: latency p99", p99, "ms", f"<= {goal_ms:.2f} ms", bool(p99 <= goal_ms)),
            Figure(f"{tag}: latency max", float(ms.max()), "ms"),
        ]
        skipped = ", ".join(f"{n} ({why})" for why, n in unmeasured.items() if n) or "none"
        blocks = frames // period
        counts = {int(b): int(np.count_nonzero(blocks == b)) for b in np.unique(blocks)}
        spread = ", ".join(f"{n} in block +{b}" for b, n in counts.items())
        within = frames - blocks * period
        result.notes.append(
            f"{period} frames per period: onsets by the audio block they fell in (+1 = the block after "
            f"the sending cycle, the earliest possible): {spread} "
            f"(of {frames.size}); within its block the onset came {np.median(within):.0f} frames "
            f"(median, max {within.max()}) after the block's start (the attack reaching "
            f"{THRESHOLD:g}); not measurable: {skipped}; {underruns} underrun(s) in the audio "
            f"process; the "
            f"recorder's MIDI went to `{reader}`.")
    return result
