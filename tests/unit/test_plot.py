"""``showrunner plot``: metrics logs written by hand, the PNG read back and its pixels checked."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import UserError
from engine.plot import plot_metrics

FIRST_LEARNER_RGB = (31, 119, 180)  # tab10's first colour


def tick(number: int, time: float, cue: str = "a", events: tuple[str, ...] = (), **fields) -> dict:
    return {"tick": number, "time": time, "cue": cue, "scene": f"scene_{cue}", "events": list(events), **fields}


def write_log(tmp_path: Path, records: list[dict], name: str = "metrics.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def one_cue_log(tmp_path: Path, loss=lambda t: 1.0, seconds: float = 10.0) -> Path:
    """Ticks every 0.1 s from 0 to ``seconds``, all in cue "a"; ``loss(t)`` of None leaves the field out."""
    records = []
    for number in range(int(round(seconds * 10)) + 1):
        t = number / 10
        value = loss(t)
        extra = {} if value is None else {"loss": None if value == "null" else value}
        records.append(tick(number, t, events=("cue",) if number == 0 else (), **extra))
    return write_log(tmp_path, records)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not an image cv2 can read"
    return image[:, :, ::-1].astype(int)


class Axes:
    """The plot area found in the image by its black frame, mapping show seconds to pixel columns."""

    def __init__(self, image: np.ndarray, first_time: float, last_time: float) -> None:
        dark = (image < 100).all(axis=2)
        columns = np.flatnonzero(dark.sum(axis=0) > 0.5 * image.shape[0])
        rows = np.flatnonzero(dark.sum(axis=1) > 0.5 * image.shape[1])
        self.left, self.right = columns.min(), columns.max()
        self.top, self.bottom = rows.min(), rows.max()
        self.first_time, self.last_time = first_time, last_time

    def column(self, time: float) -> int:
        fraction = (time - self.first_time) / (self.last_time - self.first_time)
        return int(round(self.left + fraction * (self.right - self.left)))

    def inside(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` with everything outside the frame (title, labels, legend) cleared."""
        clipped = np.zeros_like(mask)
        clipped[self.top + 2:self.bottom - 1, self.left + 2:self.right - 1] = \
            mask[self.top + 2:self.bottom - 1, self.left + 2:self.right - 1]
        return clipped


def colour_mask(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 45) -> np.ndarray:
    return (np.abs(image - np.array(rgb)) <= tolerance).all(axis=2)


def magenta_columns(image: np.ndarray) -> np.ndarray:
    """Columns that are mostly the cue-start colour from top to bottom: the cue lines."""
    magenta = (image[:, :, 0] > 200) & (image[:, :, 1] < 90) & (image[:, :, 2] > 200)
    return np.flatnonzero(magenta.sum(axis=0) > 0.4 * image.shape[0])


# The image.
def test_plot_is_a_png_of_the_requested_size(tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    plot_metrics(one_cue_log(tmp_path), out, size=(801, 457))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_rgb(out).shape == (457, 801, 3)


def test_default_size_is_1600_by_900(tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    plot_metrics(one_cue_log(tmp_path), out)
    assert read_rgb(out).shape == (900, 1600, 3)


def test_missing_output_folder_is_created(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "tonight" / "loss.png"
    plot_metrics(one_cue_log(tmp_path), out)
    assert read_rgb(out).shape == (900, 1600, 3)


# The summary.
def test_only_cues_with_loss_are_learners_in_order_of_first_loss(tmp_path: Path) -> None:
    records = [tick(0, 0.0, "intro", ("cue",)), tick(1, 0.5, "intro"),
               tick(2, 1.0, "cubic", ("cue",)), tick(3, 1.5, "cubic", loss=0.4),
               tick(4, 2.0, "knot", ("cue",), loss=None), tick(5, 2.5, "knot", loss=0.2),
               tick(6, 3.0, "cubic", ("cue",), loss=0.3)]
    summary = plot_metrics(write_log(tmp_path, records), tmp_path / "loss.png")
    assert summary["ticks"] == 7
    assert summary["learners"] == ["cubic", "knot"]
    assert summary["cues"] == ["intro", "cubic", "knot", "cubic"]
    assert summary["warning"] is None


def test_note_onsets_are_counted_from_note_on_entries_only(tmp_path: Path) -> None:
    records = [tick(0, 0.0, events=("cue",), loss=1.0),
               tick(1, 0.1, loss=1.0, midi=[["note_on 60 96", 0.09], ["note_on 64 80", 0.095]]),
               tick(2, 0.2, loss=1.0, midi=[["note_off 60 64", 0.19], ["cc 64 127", 0.19], ["program 3", 0.2]]),
               tick(3, 0.3, loss=1.0, midi=[["note_on 67 1", 0.29], ["pitchbend 100", 0.29]])]
    summary = plot_metrics(write_log(tmp_path, records), tmp_path / "loss.png")
    assert summary["notes"] == 3


def test_blank_lines_are_skipped_not_counted(tmp_path: Path) -> None:
    path = one_cue_log(tmp_path, seconds=1.0)
    path.write_text(path.read_text() + "\n\n")
    assert plot_metrics(path, tmp_path / "loss.png")["ticks"] == 11


# What is drawn.
def test_cue_start_line_is_drawn_at_its_show_time(tmp_path: Path) -> None:
    records = [tick(n, n / 10, "a" if n < 25 else "b" if n < 70 else "c",
                    events=("cue",) if n in (0, 25, 70) else (), loss=1.0 + n) for n in range(101)]
    out = tmp_path / "loss.png"
    plot_metrics(write_log(tmp_path, records), out)
    image = read_rgb(out)
    axes = Axes(image, 0.0, 10.0)
    columns = magenta_columns(image)
    for time in (2.5, 7.0):
        assert np.abs(columns - axes.column(time)).min() <= 2, f"no cue line at {time} s"
    # Nothing else is a cue line, except the first cue's, which lies on the left edge of the frame.
    expected = [axes.left, axes.column(2.5), axes.column(7.0)]
    assert all(min(abs(column - e) for e in expected) <= 3 for column in columns)


@pytest.mark.parametrize("first_loss", [0.5, 0.0], ids=["log axis", "linear axis"])
def test_ticks_with_null_or_no_loss_leave_a_gap_not_a_zero(tmp_path: Path, first_loss: float) -> None:
    def loss(t: float):
        if t == 0.0:
            return first_loss  # a real zero makes the axis linear, where a zero would show
        if 4.0 <= t < 5.0:
            return "null"  # "loss": null
        if 5.0 <= t < 6.0:
            return None  # no "loss" field at all
        return 0.5 + t / 10

    out = tmp_path / "loss.png"
    plot_metrics(one_cue_log(tmp_path, loss), out, size=(1000, 600))
    image = read_rgb(out)
    axes = Axes(image, 0.0, 10.0)
    drawn = axes.inside(colour_mask(image, FIRST_LEARNER_RGB)).any(axis=0)
    assert drawn[axes.column(2.0)] and drawn[axes.column(8.0)]
    gap = drawn[axes.column(4.2):axes.column(5.8)]
    assert not gap.any(), "the learner's line runs through ticks that had no loss"


def test_a_cue_entered_again_continues_its_line_without_joining_across_the_cue_between(tmp_path: Path) -> None:
    records = [tick(n, n / 10, "b" if 30 <= n < 60 else "a", events=("cue",) if n in (0, 30, 60) else (),
                    loss=2.6 if 30 <= n < 60 else 1.3) for n in range(101)]
    out = tmp_path / "loss.png"
    summary = plot_metrics(write_log(tmp_path, records), out)
    assert summary["learners"] == ["a", "b"]
    image = read_rgb(out)
    axes = Axes(image, 0.0, 10.0)
    drawn = axes.inside(colour_mask(image, FIRST_LEARNER_RGB)).any(axis=0)
    assert drawn[axes.column(1.5)] and drawn[axes.column(8.0)]
    assert not drawn[axes.column(3.3):axes.column(5.7)].any(), "cue a's line joins across cue b"


def line_row(image: np.ndarray, axes: Axes, start: float, end: float) -> float:
    """Median row of the first learner's colour between two show times."""
    mask = axes.inside(colour_mask(image, FIRST_LEARNER_RGB))[:, axes.column(start):axes.column(end)]
    rows = np.nonzero(mask)[0]
    assert rows.size, f"no line between {start} and {end} s"
    return float(np.median(rows))


def three_levels(tmp_path: Path, levels: tuple[float, float, float]) -> tuple[float, float, float]:
    out = tmp_path / "loss.png"
    plot_metrics(one_cue_log(tmp_path, lambda t: levels[min(2, int(t // 3.4))]), out)
    image = read_rgb(out)
    axes = Axes(image, 0.0, 10.0)
    return (line_row(image, axes, 0.5, 2.5), line_row(image, axes, 4.0, 6.0), line_row(image, axes, 7.5, 9.5))


def test_positive_losses_use_a_log_axis(tmp_path: Path) -> None:
    low, middle, high = three_levels(tmp_path, (1.0, 10.0, 100.0))
    assert (low - middle) / (low - high) == pytest.approx(0.5, abs=0.02)


def test_a_zero_loss_keeps_the_axis_linear(tmp_path: Path) -> None:
    low, middle, high = three_levels(tmp_path, (0.0, 10.0, 100.0))
    assert (low - middle) / (low - high) == pytest.approx(0.1, abs=0.02)


def test_note_onsets_are_a_rug_along_the_bottom(tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    path = one_cue_log(tmp_path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[30])
    record["midi"] = [["note_on 60 96", 3.0]]
    lines[30] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    plot_metrics(path, out)
    image = read_rgb(out)
    axes = Axes(image, 0.0, 10.0)
    dark = axes.inside((image < 80).all(axis=2))
    near_bottom = dark[axes.bottom - 12:axes.bottom - 2]
    assert near_bottom[:, axes.column(3.0) - 1:axes.column(3.0) + 2].any(), "no note mark at 3 s"
    assert not near_bottom[:, axes.column(6.0) - 20:axes.column(6.0) + 20].any(), "a note mark where none was"


def test_log_without_loss_still_draws_cues_and_says_so(tmp_path: Path) -> None:
    records = [tick(n, n / 10, "a" if n < 50 else "b", events=("cue",) if n in (0, 50) else (),
                    midi=[["note_on 60 90", n / 10]] if n % 10 == 0 else []) for n in range(101)]
    out = tmp_path / "loss.png"
    summary = plot_metrics(write_log(tmp_path, records), out)
    assert summary["learners"] == []
    assert summary["cues"] == ["a", "b"]
    assert summary["notes"] == 11
    assert "no loss" in summary["warning"]
    image = read_rgb(out)
    axes = Axes(image, 0.0, 10.0)
    assert np.abs(magenta_columns(image) - axes.column(5.0)).min() <= 2


# Bad input.
def test_missing_metrics_log_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cannot read metrics log .*nothing\.jsonl: No such file"):
        plot_metrics(tmp_path / "nothing.jsonl", tmp_path / "loss.png")


def test_a_line_that_is_not_json_is_named_by_number(tmp_path: Path) -> None:
    path = one_cue_log(tmp_path, seconds=1.0)
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:20]  # cut short, as by a crash in the middle of a write
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"metrics\.jsonl line 3: not JSON") as error:
        plot_metrics(path, tmp_path / "loss.png")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "loss.png").exists()


def test_a_line_nested_too_deeply_is_named_by_number(tmp_path: Path) -> None:
    path = one_cue_log(tmp_path, seconds=1.0)
    lines = path.read_text().splitlines()
    lines[2] = "[" * 100_000 + "]" * 100_000  # past Python's recursion limit
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"metrics\.jsonl line 3: not JSON"):
        plot_metrics(path, tmp_path / "loss.png")


def test_a_last_line_cut_by_a_crash_is_left_out(tmp_path: Path) -> None:
    path = one_cue_log(tmp_path, seconds=1.0)
    whole = len(path.read_text().splitlines())
    with path.open("a") as file:
        file.write('{"tick": 999, "time": 16.6, "cu')  # the show died in the middle of this write
    summary = plot_metrics(path, tmp_path / "loss.png")
    assert summary["ticks"] == whole
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_a_line_without_time_or_cue_is_named_by_number(tmp_path: Path) -> None:
    path = write_log(tmp_path, [tick(0, 0.0, events=("cue",)), {"tick": 1, "cue": "a"}])
    with pytest.raises(UserError, match=r"line 2: expected a tick object with a finite numeric \"time\""):
        plot_metrics(path, tmp_path / "loss.png")
    for time in ("Infinity", "NaN"):  # Python's json reads both; matplotlib cannot place them
        path.write_text('{"tick": 0, "time": 0.0, "cue": "a"}\n{"tick": 1, "time": %s, "cue": "a"}\n' % time)
        with pytest.raises(UserError, match=r"line 2: expected a tick object with a finite numeric"):
            plot_metrics(path, tmp_path / "loss.png")


def test_a_loss_that_is_not_a_number_is_named_by_line(tmp_path: Path) -> None:
    path = write_log(tmp_path, [tick(0, 0.0, events=("cue",), loss="low")])
    with pytest.raises(UserError, match=r"line 1: \"loss\" must be a number or null"):
        plot_metrics(path, tmp_path / "loss.png")


@pytest.mark.parametrize("content", ["", "\n\n"], ids=["empty", "blank lines"])
def test_a_log_with_no_ticks_is_a_user_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=r"metrics log .*metrics\.jsonl has no ticks"):
        plot_metrics(path, tmp_path / "loss.png")


def test_output_under_a_file_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(UserError, match=r"cannot write plot .*taken/loss\.png"):
        plot_metrics(one_cue_log(tmp_path), tmp_path / "taken" / "loss.png")


def test_output_that_is_a_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "plots.png").mkdir()
    with pytest.raises(UserError, match=r"cannot write plot .*plots\.png: Is a directory"):
        plot_metrics(one_cue_log(tmp_path), tmp_path / "plots.png")


def test_the_ending_of_out_picks_svg_or_pdf_and_another_is_refused(tmp_path: Path) -> None:
    path = one_cue_log(tmp_path, seconds=1.0)
    plot_metrics(path, tmp_path / "loss.svg")
    assert b"<svg" in (tmp_path / "loss.svg").read_bytes()[:2000]
    plot_metrics(path, tmp_path / "loss.PDF")
    assert (tmp_path / "loss.PDF").read_bytes().startswith(b"%PDF")
    for name in ("loss.jpg", "loss"):
        with pytest.raises(UserError, match=r"the name must end in \.png, \.svg, \.pdf"):
            plot_metrics(path, tmp_path / name)
        assert not (tmp_path / name).exists()
