"""The rack live: the sampler and the shared sample pool played by a real audio process through
PortAudio on the JACK dummy server, heard by a JACK client in the test (bench/jack_recorder.py),
and driven, for the routing, by real JACK MIDI from that client.

A flute recording (A4, about 443 Hz) is the sampler's table; two sine tables of different
frequencies show a queued loop change; a table of one constant level, rewritten while it plays,
shows whether a block ever holds two writes.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile

from engine.audio import command_ring as cmd
from engine.audio.offline import OfflineAudio
from engine.audio.pool import APPLIED, REQUESTED, SamplePool, load_audio_file
from engine.audio.rack import InstrumentSpec, RackConfig
from engine.audio.sound_settings import build_sound
from engine.setlist import load_setlist
from tests.conftest import SHARED_DATA
# live: an audio process on a rack (with its pool), closed after the test, heard by this module's
# recorder.
from tests.integration.test_audio_jack import MissedCycle, hear, listens_again, live  # noqa: F401
from tests.integration.test_sound_routing import RACK
from tests.spectrum import Spectrum, max_step, peak_near

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("shared_data")]
RATE = 48000
BLOCK = 256
FLUTE = SHARED_DATA / "audio" / "smstools_flute-A4.wav"
STEADY = (0.3, 1.8)  # seconds of the flute file where it holds its note
PAN_CENTRE = float(np.cos(np.pi / 4))  # a mono table at pan 0 reaches each side at this gain
VOICE = cmd.SCENE_VOICES + 1

# Two loops of 0.25 s with a whole number of cycles: A a sine at 400 Hz, B a cosine at 600 Hz,
# whose first sample is its peak, so a switch into B without the loop's cross-fade is a click.
LOOP = RATE // 4
FREQ_A, FREQ_B = 400.0, 600.0
CROSSFADE = 0.01  # the sampler's default loop cross-fade, seconds


def sine_table(frequency: float, phase: float = 0.0) -> np.ndarray:
    return np.sin(2 * np.pi * frequency * np.arange(LOOP) / RATE + phase).astype(np.float32)


@pytest.fixture(scope="module")
def recorder(jack):
    """Hears PortAudio's outputs and plays MIDI from its port ``<name>:midi_out``."""
    from bench.jack_recorder import JackRecorder

    rec = JackRecorder(seconds=30, midi=True)
    yield rec
    rec.close()


@pytest.fixture
def pool():
    """The flute, sines A and B, and a table the tests rewrite."""
    pool = SamplePool.create(4 * RATE * 8, max_tables=8)
    flute = load_audio_file(FLUTE, RATE)
    pool.fill(pool.allocate("flute", len(flute), flute.shape[1]), flute)
    pool.fill(pool.allocate("sine_a", LOOP, 1), sine_table(FREQ_A))
    pool.fill(pool.allocate("sine_b", LOOP, 1), sine_table(FREQ_B, np.pi / 2))
    pool.allocate("level", RATE // 10, 1)
    yield pool
    pool.close()


def rack_config(pool: SamplePool, **sampler) -> RackConfig:
    """Overtones (one partial) and a sampler playing the flute from note ``root`` (57: an octave
    under the recording)."""
    settings = {"table": pool.slot("flute"), "root": 57, "release": 0.02, **sampler}
    return RackConfig(
        sample_rate=RATE, block_size=BLOCK, buses={"overtones": 0.0, "sampler": 0.0},
        instruments=[InstrumentSpec(name="overtones", kind="overtones", bus="overtones",
                                    settings={"partials": 1, "envelope": "adsr", "release": 0.05}),
                     InstrumentSpec(name="sampler", kind="sampler", bus="sampler",
                                    settings=settings)],
        notes=["sampler"])


@contextmanager
def unless_a_cycle_was_missed(recorder, xruns: int):
    """Judge what was heard; a check that fails while JACK missed a cycle since ``xruns`` was
    read (a gap or a repeat in the capture, a MIDI event lost) is :class:`MissedCycle`, which
    ``listens_again`` runs afresh. A check that passes despite a missed cycle stands."""
    try:
        yield
    except AssertionError as error:
        if recorder.xruns != xruns:
            raise MissedCycle(f"JACK missed {recorder.xruns - xruns} cycle(s) while the test "
                              f"listened; then: {error}") from error
        raise


def onset(sound: np.ndarray) -> int:
    """The first frame of a (frames,) sound that is not exactly silent (the rack renders exact
    zeros when idle)."""
    assert sound.ndim == 1
    sounding = np.flatnonzero(np.abs(sound) > 0)
    assert sounding.size, "nothing was heard"
    return int(sounding[0])


def flute_fundamental() -> float:
    """The recording's own fundamental over its steady part, read from the file at its own rate."""
    data, rate = soundfile.read(str(FLUTE), dtype="float64", always_2d=True)
    return peak_near(data[int(STEADY[0] * rate):int(STEADY[1] * rate), 0], rate, 440.0, 20.0)


# 1. Pitch.
@listens_again
@pytest.mark.parametrize("how", ["note", "play"])
def test_a_recording_plays_at_the_pitch_asked_for_through_jack(live, recorder, pool, how):
    audio = live(rack_config(pool), pool)
    sampler = audio.instrument("sampler")
    xruns = recorder.xruns
    if how == "note":
        ratio = 2 ** (4 / 12)  # note 61 from root 57: a major third up
        heard = hear(recorder, STEADY[1] / ratio + 0.2, lambda: sampler.note_on(61, 100))[:, 0]
        sampler.note_off(61)
    else:
        ratio = 1.5
        heard = hear(recorder, STEADY[1] / ratio + 0.2,
                     lambda: sampler.play("flute", VOICE, gain=1.0, ratio=ratio))[:, 0]
    with unless_a_cycle_was_missed(recorder, xruns):
        start = onset(heard)
        # The same stretch of the recording, played faster by ``ratio``.
        steady = heard[start + int(STEADY[0] / ratio * RATE):start + int(STEADY[1] / ratio * RATE)]
        assert len(steady) == int(STEADY[1] / ratio * RATE) - int(STEADY[0] / ratio * RATE), \
            "the capture ended before the stretch measured"
        expected = ratio * flute_fundamental()
        assert np.abs(steady).max() > 0.02, "the sample was not heard over the stretch measured"
        assert peak_near(steady, RATE, expected, 0.05 * expected) == pytest.approx(expected, rel=0.005)


# 2. A queued loop.
def tone_levels(sound: np.ndarray, hop: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window centres, amplitude at 400 Hz, amplitude at 600 Hz) over windows of 240 frames, two
    and three whole cycles of them, where the two are orthogonal."""
    width = 240
    starts = np.arange(0, len(sound) - width, hop)
    n = np.arange(width)
    levels = []
    for frequency in (FREQ_A, FREQ_B):
        basis = np.exp(-2j * np.pi * frequency * n / RATE)
        windows = np.lib.stride_tricks.sliding_window_view(sound, width)[starts]
        levels.append(np.abs(windows @ basis) * 2 / width)
    return starts + width // 2, levels[0], levels[1]


@listens_again
def test_a_queued_table_takes_over_at_the_loop_end_without_a_click_through_jack(live, recorder,
                                                                               pool):
    audio = live(rack_config(pool), pool)
    sampler = audio.instrument("sampler")
    marks = {}

    def play():
        sampler.play("sine_a", VOICE, gain=0.5, loop=True)
        time.sleep(0.33)  # into A's second pass, far from a loop end
        marks["queued"] = recorder.mark()
        sampler.queue(VOICE, "sine_b")
        time.sleep(0.6)
        sampler.stop(VOICE)

    mark, xruns = recorder.mark(), recorder.xruns
    heard = hear(recorder, 0.1, play)[:, 0]
    with unless_a_cycle_was_missed(recorder, xruns):
        check_queue(heard, marks["queued"] - mark)


def check_queue(heard: np.ndarray, sent: int) -> None:
    """``sent``: the frame of the capture the queue command was sent at."""
    fade = int(CROSSFADE * RATE)
    start = onset(heard)
    queued = sent - start  # frames after the onset the queue was sent at
    # The loop ends: the first pass plays the whole table, later passes are a cross-fade shorter.
    ends = [LOOP + k * (LOOP - fade) for k in range(4)]
    end = next(e for e in ends if e - fade > queued + 2 * BLOCK)
    assert queued > ends[0] + 2 * BLOCK, "the queue was sent too early to tell (machine too slow)"
    centres, a, b = tone_levels(heard[start:start + end + 2 * LOOP // 3])
    full = 0.5 * PAN_CENTRE
    assert np.median(b[centres > end + 200]) == pytest.approx(full, rel=0.02), "B never took over"
    # Before the cross-fade into B: A alone; after the loop end: B alone. (Left out: the attack
    # and A's own earlier seams, where the equal-power fade of A into itself swells A by up to
    # 3 dB, which leaks a little into the 600 Hz window.)
    before = (centres + 120 < end - fade) & (centres > 240)
    for seam in ends[:ends.index(end)]:
        before &= (centres + 120 < seam - fade) | (centres - 120 > seam)
    assert b[before].max() < 0.02 * full, "B sounded before the loop end it was queued for"
    assert a[before].min() > 0.9 * full
    after = centres - 120 > end
    assert a[after].max() < 0.02 * full, "A still sounds after the loop end"
    # The change: half way through the cross-fade that ends at the loop end.
    crossing = int(centres[np.argmax(b > a)])
    assert abs(crossing - (end - fade / 2)) <= BLOCK, \
        f"the change fell {crossing - (end - fade / 2):+.0f} frames from the loop end's fade"
    # No click: no step steeper than the higher tone's own steepest (a cross-fade of the two can
    # reach sqrt(400^2 + 600^2) / 600 = 1.2 times it; B starting at its peak without one: ~20 x).
    own = max_step(heard[start + end + LOOP // 4:start + end + LOOP // 2])
    assert own == pytest.approx(2 * np.pi * FREQ_B / RATE * full, rel=0.05)
    assert max_step(heard[start:start + end + LOOP // 2]) < 1.3 * own


# 3. Rewritten tables.
@listens_again
@pytest.mark.parametrize("how", ["write_table", "write_table_now"])
def test_a_table_rewritten_while_it_loops_is_heard_whole_block_by_block_through_jack(
        live, recorder, pool, how):
    """The table holds one constant level, a new one at every write; each block must carry a
    single level, the levels in the order written, none skipped, none coming back. With
    ``write_table_now`` the writes come from a thread of their own (a scene's decoder) while the
    show's thread sends commands down the same ring all along."""
    audio = live(rack_config(pool), pool)
    sampler = audio.instrument("sampler")
    sampler.set("attack", 0.0)
    sampler.set("crossfade", 0.0)  # a constant table then loops as one constant
    slot = audio.table("level")
    frames = RATE // 10
    values = np.float32(0.2) + np.float32(0.0002) * np.arange(2500, dtype=np.float32)

    def level(k: int) -> np.ndarray:  # all under the limiter's threshold
        return np.full(frames, values[k], np.float32)

    pool.fill(slot, level(0))
    written = [0]
    marks = {}
    calls = []  # (pending before the call, that swap still pending after it, what it returned)
    headers = pool.headers

    write = audio.write_table if how == "write_table" else audio.write_table_now

    def writes():
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            requested, before = int(headers[slot, REQUESTED]), int(headers[slot, APPLIED])
            accepted = write("level", level(len(written)))
            after = int(headers[slot, APPLIED])
            # Still pending: the audio process applied no swap meanwhile (it may apply the old
            # one and, at once, the new one this call requested: then the old was not pending).
            calls.append((before != requested, before != requested and after == before, accepted))
            if accepted:
                written.append(len(written))
            time.sleep(0.0005)

    def play():
        sampler.play("level", VOICE, loop=True)
        time.sleep(0.1)
        if how == "write_table":
            writes()
        else:
            writer = threading.Thread(target=writes)
            writer.start()
            while writer.is_alive():  # the show's thread, sending down the same ring meanwhile
                sampler.set("crossfade", 0.0)
                time.sleep(0.0003)
            writer.join()
        time.sleep(0.1)
        marks["stop"] = recorder.mark()
        sampler.stop(VOICE)

    mark, xruns = recorder.mark(), recorder.xruns
    heard = hear(recorder, 0.1, play)[:, 0]
    # write_table: True whenever no swap was pending, False whenever one stayed pending.
    assert all(accepted for pending, _, accepted in calls if not pending)
    assert not any(accepted for _, still, accepted in calls if still)
    assert sum(1 for *_, accepted in calls if not accepted) > 50, "no write found a swap pending"
    assert len(written) > 50, "write_table did not accept writes again after their swaps"
    with unless_a_cycle_was_missed(recorder, xruns):
        start = onset(heard)
        sound = heard[start:marks["stop"] - mark - 2 * BLOCK]  # up to the stop's release
        changes = np.flatnonzero(np.diff(sound)) + 1  # frames where the level changed
        phases = set((changes % BLOCK).tolist())
        assert len(phases) == 1, f"a level changed within a block (block phases {sorted(phases)})"
        played = np.concatenate([[sound[0]], sound[changes]])  # each level heard, in order
        expected = (values.astype(np.float64) * PAN_CENTRE).astype(np.float32)
        heard_levels = [int(np.argmin(np.abs(expected - value))) for value in played]
        assert np.allclose(played, expected[heard_levels], rtol=1e-6, atol=0), "a level never written"
        assert heard_levels == list(range(len(written))), "levels skipped, repeated or out of order"


# 4. Routing of the live MIDI input.
SETLIST = 'title = "routing live"\n' + RACK + """
[[cues]]
id = "one"
scene = "pulse"
"""


@listens_again
def test_live_midi_sounds_the_instruments_routed_to_through_jack(live, recorder, tmp_path):
    """Note 69 by JACK MIDI: the sampler plays it an octave up (880 Hz: the flute's root is 57),
    the overtones at 440 Hz, so the spectrum says which instrument it reached."""
    path = tmp_path / "routing.toml"
    path.write_text(SETLIST)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    try:
        audio = live(rack, pool, midi_input=f"{recorder.client.name}:midi_out", midi_api="jack")
        deadline = time.monotonic() + 10
        while not recorder.client.get_all_connections(recorder.midi_out):
            assert time.monotonic() < deadline, "the audio process never connected to the MIDI port"
            time.sleep(0.05)

        def strike(names: list[str]) -> np.ndarray:
            audio.route(names)
            time.sleep(0.05)
            mark = recorder.mark()
            recorder.send_midi(0x90, 69, 100)
            time.sleep(0.5)
            recorder.send_midi(0x80, 69, 0)
            heard = recorder.since(mark)[:, 0]
            time.sleep(0.2)  # both releases over
            return heard

        xruns = recorder.xruns
        sampler, overtones, nothing = strike(["sampler"]), strike(["overtones"]), strike([])
    finally:
        pool.close()

    def levels(sound: np.ndarray) -> tuple[float, float]:
        start = onset(sound)
        spectrum = Spectrum(sound[start + int(0.1 * RATE):start + int(0.45 * RATE)], RATE)
        return spectrum.level(440.0), spectrum.level(880.0)

    with unless_a_cycle_was_missed(recorder, xruns):  # a MIDI event can be lost with a cycle
        at_440, at_880 = levels(sampler)
        assert at_880 > 0.01, "the sampler did not play the note"
        assert at_440 < 0.02 * at_880, "routed to the sampler, the note sounded the overtones"
        at_440, at_880 = levels(overtones)
        assert at_440 > 0.01, "the overtones did not play the note"
        assert at_880 < 0.02 * at_440, "routed to the overtones, the note sounded the sampler"
        assert np.abs(nothing).max() == 0.0, "routed to nothing, the note sounded"


# 5. Offline and live.
@listens_again
def test_the_sampler_sounds_the_same_live_as_offline(live, recorder, pool):
    """The same commands, live and offline, applied at the same blocks give the same samples.
    Live, each command lands at whatever block follows its sending: that block is found from the
    capture (the first block where the live sound leaves the offline render without it), the
    command is stamped there offline, and in the end the whole capture must equal the render."""
    rack = rack_config(pool)
    audio = live(rack, pool)
    steps = [(0.0, lambda out: out.instrument("sampler").note_on(64, 100)),
             (0.25, lambda out: out.instrument("sampler").play("flute", VOICE, 0.5, 1.5, 0.3,
                                                                 True)),
             (0.5, lambda out: out.instrument("sampler").stop(VOICE)),
             (0.7, lambda out: out.instrument("sampler").note_off(64))]
    sent = []

    def play():
        began = time.monotonic()
        for at, step in steps:
            time.sleep(max(0.0, began + at - time.monotonic()))
            sent.append(time.monotonic() - began)
            step(audio)

    xruns = recorder.xruns
    heard = hear(recorder, 0.3, play)

    def render(blocks: list[int], frames: int) -> np.ndarray:
        offline = OfflineAudio(rack, pool=pool)
        for (_, step), block in zip(steps, blocks):
            offline.advance(block * BLOCK / RATE)
            offline.show_time = block * BLOCK / RATE
            step(offline)
        offline.advance(frames / RATE)
        return offline.samples()[:frames]

    with unless_a_cycle_was_missed(recorder, xruns):
        start = onset(heard[:, 0])
        first = onset(render([0], BLOCK)[:, 0])  # where the first sound falls within its block
        live_sound = heard[start - first:]
        frames = len(live_sound) // BLOCK * BLOCK
        live_sound = live_sound[:frames]
        blocks = [0]
        for index in range(1, len(steps)):
            without = render(blocks, frames)
            differs = np.flatnonzero(np.any(live_sound != without, axis=1))
            assert differs.size, f"command {index} changed nothing live"
            block = int(differs[0]) // BLOCK
            expected = (sent[index] - sent[0]) * RATE / BLOCK
            assert abs(block - expected) < 0.05 * RATE / BLOCK, \
                f"command {index} was heard {(block - expected) * BLOCK / RATE:+.3f} s from its sending"
            blocks.append(block)
        offline = render(blocks, frames)
        assert np.abs(offline).max() > 0.05
        differs = np.flatnonzero(np.any(live_sound != offline, axis=1))
        assert differs.size == 0, (f"live and offline differ from frame {differs[0]} on (max "
                                   f"{np.abs(live_sound - offline).max():.3g})")
