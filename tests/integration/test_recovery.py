"""Recovery (engine/supervisor.py, Show.catch_up; issue 25): `showrunner run` under its parent. A
live headless show on JACK driven by a real performance, SIGKILLed in its second part, comes back at the
same moment: the same cue, and from there the same metrics (the learners' losses) as an
uninterrupted show for the same ticks; its performance log replays as the uninterrupted show's does.
A scene that kills its show at a fixed moment is restarted there, then moved past, or the parent
stops with one line; --no-recover leaves a dead show dead."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import av
import pytest

from engine.perflog import comparable
from tests.conftest import ROOT, showrunner_command

PERFORMANCE = ROOT / "assets" / "midi" / "performances" / "asap_Chopin_Ballades_1_Ali01.mid"  # the learners learn from it
PART = 4  # seconds a part
SECONDS = 11


def piece(tmp_path: Path) -> Path:
    """The first piece, its parts PART s long, small (a loaded machine keeps its frames)."""
    text = (ROOT / "setlists" / "ldd-demo.toml").read_text()
    text = re.sub(r"after = \d+(\.\d+)?, cc = 67", f"after = {PART}", text)  # timed parts only
    text = re.sub(r'resolution = "\d+x\d+"', 'resolution = "320x180"', text)
    text = text.replace('"../assets/', f'"{ROOT}/assets/')
    # The knot on any bass note (the original's rule): the performance's first seconds hold no
    # three-note chords, and the knot's learners are to be at work when the show dies.
    text = text.replace('scene = "ldd_knot"\n', 'scene = "ldd_knot"\nparams = { trigger = "any_bass" }\n')
    path = tmp_path / "ldd.toml"
    path.write_text(text)
    return path


def start(tmp_path: Path, setlist: Path, name: str, *extra: str, jack: dict | None = None,
          window: dict | None = None) -> subprocess.Popen:
    """``jack``: with sound, on that JACK server (else --no-audio); ``window``: in a window, on the
    X display that environment names (else headless)."""
    return subprocess.Popen(showrunner_command(
        "run", str(setlist), *([] if window else ["--headless"]), *([] if jack else ["--no-audio"]),
        "--log-dir", str(tmp_path / "logs"), "--metrics", str(tmp_path / f"{name}.jsonl"),
        "--perf-log", str(tmp_path / f"{name}.perf.jsonl"), *extra),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=jack or window)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def the_show(parent: subprocess.Popen) -> int:
    """The show the parent runs (not its standby, which waits with --standby-fd)."""
    found = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split() if b"--standby-fd" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(pids) == 1, pids
    return pids[0]


def wait_for_tick(metrics: Path, tick: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if metrics.exists() and any(line.get("tick", 0) >= tick for line in lines(metrics)[-5:]):
            return
        time.sleep(0.05)
    raise AssertionError(f"tick {tick} not reached")


def killed_at(parent: subprocess.Popen, metrics: Path, tick: int) -> str:
    """SIGKILL the show ``parent`` supervises once it has reached ``tick``; its stderr, once the
    parent (which restarts it) has ended well."""
    try:
        wait_for_tick(metrics, tick, parent)
        subprocess.run(["kill", "-KILL", str(the_show(parent))], check=True)
        _, err = parent.communicate(timeout=300)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, err[-3000:]
    return err


def frames(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [hashlib.md5(b"".join(bytes(p) for p in f.planes)).hexdigest() for f in container.decode(video=0)]


def replayed(folder: Path, name: str) -> list[str]:
    """The frames of a replay of the performance log ``name`` wrote in ``folder``."""
    done = subprocess.run(showrunner_command(
        "replay", str(folder / f"{name}.perf.jsonl"), "--out", str(folder / f"{name}.mkv"), "--size",
        "160x90", "--fps", "20", "--lossless", "--log-dir", str(folder / "logs")),
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replay took other cues" not in done.stderr
    return frames(folder / f"{name}.mkv")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, jack) -> tuple[dict[int, dict], list[str]]:
    """The show that never dies, run once for both ways of coming back: its metrics by tick and
    its performance log's replay, frame by frame."""
    folder = tmp_path_factory.mktemp("whole")
    whole = start(folder, piece(folder), "whole", "--no-recover", "--midi-file", str(PERFORMANCE),
                  "--duration", str(SECONDS), jack=jack)
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err[-3000:]
    return {line["tick"]: line for line in lines(folder / "whole.jsonl")}, replayed(folder, "whole")


@pytest.mark.jack
@pytest.mark.parametrize("every", [0, 2], ids=["from_the_start", "from_a_saved_state"])
def test_a_show_killed_in_its_second_part_comes_back_at_the_same_moment(tmp_path, jack, uninterrupted, every):
    # The show that comes back ticks through the log from its start, or from the state the show
    # that died saved last (every 2 s here: 4.0 or 6.0 s into the show, 1.5 s into the knot at
    # the kill); either way it goes on exactly as the show that never died.
    setlist = piece(tmp_path)
    args = ("--midi-file", str(PERFORMANCE), "--duration", str(SECONDS))
    show = start(tmp_path, setlist, "crashed", *args, "--save-state-every", str(every), jack=jack)
    err = killed_at(show, tmp_path / "crashed.jsonl", int((PART + 1.5) * 60))  # the knot, 1.5 s in
    assert "the show died (signal SIGKILL)" in err
    assert not (tmp_path / "crashed.perf.jsonl.state").exists()  # the show ended: of no more use
    back = re.search(r"back after the show died: at ([\d.]+) s, cue (\w+), ([\d.]+) s without a show "
                     r"\(caught up (\d+) ticks in [\d.]+ s(?: from its state at ([\d.]+) s)?\)", err)
    assert back, err[-3000:]
    assert back.group(2) == "knot"
    gap = float(back.group(3))
    print(f"picture back {gap:.2f} s after the kill (goal 5 s)")
    assert gap < 15  # measured and printed; the 5 s goal is the benchmark's (docs/recovery.md)
    crashed = {line["tick"]: line for line in lines(tmp_path / "crashed.jsonl")}
    resumed = next(tick for tick in sorted(crashed) if "recovered" in crashed[tick]["events"]) - 1
    assert resumed >= (PART + 0.5) * 60
    if every:  # from the last state saved before the kill (4.0 or 6.0 s), the rest from the log
        assert back.group(5) in ("4.0", "6.0"), err[-3000:]
        assert abs(int(back.group(4)) - (resumed - float(back.group(5)) * 60)) <= 6  # its seconds are rounded
    else:
        assert back.group(5) is None and int(back.group(4)) == resumed

    assert "playing on through audio process" in err  # its sound played on through the gap
    reference, whole_frames = uninterrupted
    after = [tick for tick in sorted(crashed) if tick > resumed]
    assert len(after) >= (SECONDS - PART - 3) * 60 and after[-1] == max(reference)

    def same(line: dict) -> dict:
        kept = comparable(line)
        if "recovered" in kept["events"]:  # the tick back: the cue's sound settings sent again first
            kept["events"].remove("recovered")
            resent = kept.pop("audio", [])
            own = reference[line["tick"]].get("audio", [])
            assert resent[len(resent) - len(own):] == own and ["gain", "master", 0.0] in resent
            if own:
                kept["audio"] = own
        # A live show stamps an event at its time source's reading less the show's origin: the
        # same file second comes out a microsecond apart in two shows with other origins (the
        # times are compared within 10 us below).
        kept["midi"] = [text for text, _at in kept.get("midi", [])]
        return kept
    differ = [tick for tick in after if same(crashed[tick]) != same(reference[tick])]
    assert differ == [], [(tick, {k: (same(crashed[tick]).get(k), same(reference[tick]).get(k))
                                  for k in set(same(crashed[tick])) | set(same(reference[tick]))
                                  if same(crashed[tick]).get(k) != same(reference[tick]).get(k)})
                          for tick in differ[:3]]
    stamps = [(a, b) for tick in after for (_, a), (_, b) in zip(crashed[tick].get("midi", []),
                                                                  reference[tick].get("midi", []))]
    assert stamps and max(abs(a - b) for a, b in stamps) < 1e-5
    assert sum("loss" in crashed[tick] and crashed[tick]["cue"] == "knot" for tick in after) > 30  # learning

    # The performance log of the show that died and came back replays as the uninterrupted one.
    assert replayed(tmp_path, "crashed") == whole_frames


def dice(tmp_path: Path) -> Path:
    """The dice game, small: its first cue's waltz is written by the show (a note source)."""
    text = (ROOT / "setlists" / "dice.toml").read_text()
    text = re.sub(r'resolution = "\d+x\d+"', 'resolution = "320x180"', text)
    path = tmp_path / "dice.toml"
    path.write_text(text)
    return path


def notes_after(perf_log: Path, tick: int) -> list[tuple[int, str, int]]:
    """(tick, kind, note) of every note event the log holds after ``tick``."""
    return [(line["tick"], event["type"], event["note"]) for line in lines(perf_log)[1:]
            if line.get("tick", 0) > tick for event in line.get("midi", []) if "note" in event]


WALTZ_SECONDS = 7


@pytest.fixture(scope="module")
def whole_waltz(tmp_path_factory) -> Path:
    """The performance log of the dice game's waltz played without a death, run once for both ways
    of coming back."""
    folder = tmp_path_factory.mktemp("waltz")
    whole = start(folder, dice(folder), "whole", "--duration", str(WALTZ_SECONDS), "--no-recover")
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err[-3000:]
    return folder / "whole.perf.jsonl"


@pytest.mark.parametrize("every", [0, 1], ids=["from_the_start", "from_a_saved_state"])
def test_a_waltz_the_show_writes_plays_on_after_a_death_as_if_none(tmp_path, whole_waltz, every):
    # The cue's note source is where the live show's was when it comes back: its next notes at
    # the ticks an uninterrupted show plays them, none twice, none lost (it once went silent after
    # a catch-up from the log's start, and played every note since its state twice after one from
    # a saved state).
    show = start(tmp_path, dice(tmp_path), "crashed", "--duration", str(WALTZ_SECONDS),
                 "--save-state-every", str(every))
    err = killed_at(show, tmp_path / "crashed.jsonl", 3 * 60 + 10)
    assert ("from its state at" in err) == bool(every), err[-3000:]
    metrics = {line["tick"]: line for line in lines(tmp_path / "crashed.jsonl")}
    resumed = next(tick for tick in sorted(metrics) if "recovered" in metrics[tick]["events"]) - 1
    played = notes_after(tmp_path / "crashed.perf.jsonl", resumed)
    assert len(played) >= 6  # the waltz goes on: a note or more a second
    assert played == notes_after(whole_waltz, resumed)


def test_a_saved_state_the_show_cannot_take_is_set_aside_and_the_show_comes_back_from_its_log(tmp_path):
    # A state that reads but cannot be put into the show (here: one naming a part the show does
    # not have) ends that show; the supervisor sets the state aside without counting a try, and
    # the next show comes back from the log's start.
    import pickle

    from engine.recovery_state import MAGIC, log_identity

    show = start(tmp_path, dice(tmp_path), "crashed", "--duration", "5", "--save-state-every", "0")
    perf = tmp_path / "crashed.perf.jsonl"
    bad = {"frame": 0, "now": 0.0, "state": {}, "resources": [((("attr", "no_such_part"),), None)]}

    try:
        wait_for_tick(tmp_path / "crashed.jsonl", 120, show)
        (tmp_path / "crashed.perf.jsonl.state").write_bytes(
            MAGIC + f"60 {log_identity(perf)}\n".encode() + pickle.dumps(bad))
    except BaseException:
        show.kill()
        raise
    err = killed_at(show, tmp_path / "crashed.jsonl", 120)
    assert "could not be put into the show" in err, err[-3000:]
    assert "could not take the state it saved (set aside); it comes back from the log's start" in err
    backs = re.findall(r"back after the show died: .*", err)
    assert len(backs) == 1 and "from its state" not in backs[0], err[-3000:]
    assert len(re.findall(r"the show died \(", err)) == 2  # the kill, and the show the state ended
    assert not list(tmp_path.glob("crashed.perf.jsonl.state*"))


def drill(tmp_path: Path, then: str, before: float = 1) -> Path:
    text = f"""title = "recovery drill"
pieces = ["builtin"]
tick_rate = 60
fps = 30
resolution = "160x90"

[[cues]]
id = "before"
scene = "pulse"
advance = {{ after = {before} }}

[[cues]]
id = "drill"
scene = "crash"
params = {{ after = 0.5 }}
advance = {{ after = 5 }}

[[cues]]
id = "after"
scene = "{then}"
{'params = { after = 0.2 }' if then == "crash" else ''}
"""
    path = tmp_path / "drill.toml"
    path.write_text(text)
    return path


def test_a_scene_that_kills_its_show_again_and_again_is_moved_past(tmp_path):
    show = start(tmp_path, drill(tmp_path, "pulse"), "drill", "--duration", "4", "--record",
                 str(tmp_path / "drill.mkv"), "--save-state-every", "0.5")
    _, err = show.communicate(timeout=300)
    assert show.returncode == 0, err[-3000:]
    deaths = re.findall(r"the show died \(signal SIGKILL\) at ([\d.]+) s", err)
    assert len(deaths) == 4, err[-3000:]  # restarted at the same place 3 times, then at the next cue
    # The first show back starts from the state the show saved; one that dies at the same place
    # again has its state dropped (it may be the cause): the next ones start from the log's start.
    backs = re.findall(r"back after the show died: .*", err)
    assert len(backs) == 4 and "from its state at" in backs[0], err[-3000:]
    assert not any("from its state at" in back for back in backs[1:]), backs
    assert not (tmp_path / "drill.perf.jsonl.state").exists()
    assert all(1.0 <= float(at) <= 1.5 for at in deaths)
    assert err.count("starting it again at the next cue") == 1
    assert "on to the next cue" in err
    cues = [line.get("cue") for line in lines(tmp_path / "drill.jsonl")]
    assert cues[-1] == "after"
    # The recording: closed playable at each death, and going on in the next file.
    parts = [tmp_path / "drill.mkv"] + [tmp_path / f"drill-{k}.mkv" for k in range(2, 6)]
    assert not (tmp_path / "drill-6.mkv").exists()
    spans = []
    for index, part in enumerate(parts):
        with av.open(str(part)) as container:
            pictures = [frame.time for frame in container.decode(video=0)]
        # A restart lives from where it came back to the death, 0.1-0.5 s: on a loaded machine the
        # kill can come before its second picture reaches the encoder (seen once in a full CI run).
        # Every file still plays; the first and the last show live long enough to be timed.
        assert len(pictures) >= (1 if 0 < index < 4 else 2), f"{part.name} holds no picture"
        spans.append((pictures[1], pictures[-1]) if len(pictures) >= 2 else None)  # (the first is also shown from 0)
    print(f"recorded parts, in show seconds: {spans}")
    # The drill kills its show 1.5 s in (0.5 s into its cue); a restart comes back where the
    # show last said it got (its heartbeat, four times a second, said at the death), or later,
    # where the state it saved says it got (up to the death).
    assert spans[0][1] == pytest.approx(1.5, abs=0.1)
    for span, at in zip(spans[1:4], deaths):
        if span is not None:
            first, last = span
            assert float(at) <= first + 1e-9 <= float(at) + 0.3 and last == pytest.approx(1.5, abs=0.1)
    assert spans[4][1] == pytest.approx(4.0, abs=0.1)  # the last, moved on, played the show out
    # The move to the next cue is a GO in the log: a replay takes the same cues.
    done = subprocess.run(showrunner_command(
        "replay", str(tmp_path / "drill.perf.jsonl"), "--out", str(tmp_path / "replayed.mkv"), "--log-dir",
        str(tmp_path / "logs")), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "differs" not in done.stderr and "took other cues" not in done.stderr, done.stderr[-3000:]


def test_a_show_that_dies_at_the_next_cue_too_stops_with_one_line(tmp_path):
    show = start(tmp_path, drill(tmp_path, "crash"), "drill", "--duration", "4")
    _, err = show.communicate(timeout=300)
    assert show.returncode == 1
    last = err.strip().splitlines()[-1]
    assert "even after moving on to the next cue (the last: signal SIGKILL); stopping" in last
    assert "replays it up to there" in last
    assert "Traceback" not in err


def test_no_recover_leaves_a_dead_show_dead(tmp_path):
    show = start(tmp_path, drill(tmp_path, "pulse"), "drill", "--duration", "4", "--no-recover")
    _, err = show.communicate(timeout=300)
    assert show.returncode == -signal.SIGKILL
    assert "starting it again" not in err


@pytest.mark.parametrize("windowed", [False, True], ids=["headless", "window"])
def test_a_standby_show_takes_over_at_once(tmp_path, windowed, request):
    # --standby: a second show loads once the first is live and waits; it takes over when the
    # first dies (no start-up, no loading), and another standby loads behind it. In a window, the
    # standby's is made hidden and shown when it takes over.
    window = request.getfixturevalue("x_display") if windowed else None
    show = start(tmp_path, drill(tmp_path, "pulse", before=4), "drill", "--duration", "6", "--standby",
                 window=window)
    _, err = show.communicate(timeout=300)
    assert show.returncode == 0, err[-3000:]
    gaps = [float(gap) for gap in re.findall(r"back after the show died: at [\d.]+ s, cue \w+, ([\d.]+) s without", err)]
    assert len(gaps) == 4, err[-3000:]
    print(f"gaps with a standby: {gaps} s")
    # The first death comes 4 s in, when the standby has long loaded; the later ones 0.5 s after
    # the show came back, when the next standby may still be loading.
    assert gaps[0] < 0.5
    assert [line.get("cue") for line in lines(tmp_path / "drill.jsonl")][-1] == "after"
    logs = sorted((tmp_path / "logs").glob("*.log"))
    assert len(logs) == 5  # the standby not needed left no log
    # Every death was the drill's: none of a fault in C (its traceback goes into the show's log).
    assert err.count("(signal SIGKILL)") == 4, err[-3000:]
    assert not [path.name for path in logs if "Fatal Python error" in path.read_text()]
    if windowed:
        # A standby's window is shown when it takes over, and only then. The first standby has
        # long loaded when the first death comes; a later death may come while the next one
        # still loads, and then a show started afresh (its window never hidden) takes over.
        texts = sorted(path.read_text() for path in logs)  # by their first line's time
        shown = [text for text in texts if "window shown" in text]
        assert shown and all("back after the show died" in text for text in shown), texts
        assert "window shown" in texts[1], texts[1][-2000:]


def training_piece(tmp_path: Path) -> Path:
    """Granolar (a VAE of sound grains learning on stage), small."""
    text = (ROOT / "setlists" / "granolar.toml").read_text()
    text = re.sub(r'resolution = "\d+x\d+"', 'resolution = "320x180"', text)
    text = text.replace('"../', f'"{ROOT}/')
    path = tmp_path / "granolar.toml"
    path.write_text(text)
    return path


def trained(perf_log: Path, key: str) -> list[tuple[int, int]]:
    """(tick, step count) each time the log says trainer ``key`` had moved on."""
    return [(line["tick"], line["trained"][key]) for line in lines(perf_log) if key in line.get("trained", {})]


@pytest.mark.parametrize("standby", [False, True], ids=["restarted", "standby"])
def test_a_training_piece_comes_back_from_its_models_saved_state_and_saves_on(tmp_path, standby):
    # The grain VAE trains in the background; killed in its cue, the show comes back with the
    # model where the live one had got (the state its thread saved, the steps after it computed),
    # not by training every step again: the catch-up takes what the steps since the last save
    # take, whatever the time trained. A standby follows the live show without training the model
    # again (it takes the saved states) and takes over from the newest. Either way the show that
    # came back saves its model's states in turn, for a next death.
    from engine.learners import checkpoint

    killed_at, seconds = (14, 22) if standby else (8, 12)  # a standby has loaded 14 s in
    show = start(tmp_path, training_piece(tmp_path), "vae", "--midi-file", str(PERFORMANCE),
                 "--duration", str(seconds), *(["--standby"] if standby else []))
    saved = tmp_path / "vae.perf.jsonl.training" / "learn%2Fvae.ckpt"
    try:
        wait_for_tick(tmp_path / "vae.jsonl", killed_at * 60, show, timeout=180)
        assert saved.is_file()  # every 2 s
        subprocess.run(["kill", "-KILL", str(the_show(show))], check=True)
        _, err = show.communicate(timeout=300)
    finally:
        if show.poll() is None:
            show.kill()
    assert show.returncode == 0, err[-3000:]
    back = re.search(r"back after the show died: at ([\d.]+) s, cue (\w+), [\d.]+ s without a show "
                     r"\(caught up (\d+) ticks in ([\d.]+) s, (\d) of (\d) models from their saved states\)", err)
    assert back, err[-3000:]
    assert back.group(2) == "learn" and back.group(5) == "1" and back.group(6) == "3", back.group(0)
    resumed = int(back.group(3))
    counts = trained(tmp_path / "vae.perf.jsonl", "learn/vae")
    before = [steps for tick, steps in counts if tick <= resumed]
    after = [steps for tick, steps in counts if tick > resumed]
    last_saved = checkpoint.read(saved)[0]["extra"]["steps"]
    print(f"{back.group(0)}; {before[-1]} steps when it died, {after[0]} when it came back, {after[-1]} at the "
          f"end, {last_saved} in the last state saved")
    assert before[-1] >= 20  # it had trained
    # It goes on from the steps it had (or the call the dead show was about to show), trains on,
    # and saves its model's states as the show that died did.
    assert before[-1] <= after[0] <= before[-1] + 1 and after[-1] > after[0]
    assert last_saved > after[0]
