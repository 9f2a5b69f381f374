"""``showrunner plot``: the loss over a show, drawn from its metrics log (engine/metrics.py).

One line per learner (a cue: each cue's scene has its own learner) against show time in seconds,
vertical lines where cues start, note onsets as a rug along the bottom. The log is read line by line,
so an hour-long show (216000 ticks at 60 ticks/s) plots in a few seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError

CUE_LINE_COLOUR = "#ff00ff"  # pure magenta: no learner colour (tab10/tab20) comes near it
NOTE_COLOUR = "#202020"
DPI = 100


@dataclass
class _Learner:
    """The loss curve of one cue: NaN where a tick had no loss and where the cue was left."""

    scene: str
    times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    has_loss: bool = False


@dataclass
class _Show:
    ticks: int = 0
    first_time: float = math.inf
    last_time: float = -math.inf
    learners: dict[str, _Learner] = field(default_factory=dict)
    cue_starts: list[tuple[float, str]] = field(default_factory=list)
    note_times: list[float] = field(default_factory=list)
    all_positive: bool = True


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read(metrics: Path) -> _Show:
    """Stream the metrics log once; a bad line is a UserError naming its line number."""
    show = _Show()
    current: str | None = None
    try:
        file = metrics.open("rb")  # bytes: json.loads decodes, and a bad byte becomes a bad line
    except OSError as error:
        raise UserError(f"cannot read metrics log {metrics}: {error.strerror}") from None
    with file:
        try:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):  # RecursionError: nested too deeply
                    if not line.endswith(b"\n"):  # the last line, cut short when the show died
                        break
                    raise UserError(f"{metrics} line {number}: not JSON (expected one JSON object per tick)") \
                        from None
                _add(show, record, current, metrics, number)
                current = record["cue"]
        except OSError as error:
            raise UserError(f"cannot read metrics log {metrics}: {error.strerror}") from None
    if show.ticks == 0:
        raise UserError(f"metrics log {metrics} has no ticks (is it empty?)")
    return show


def _add(show: _Show, record: Any, current: str | None, metrics: Path, number: int) -> None:
    if not isinstance(record, dict) or not _number(record.get("time")) or not math.isfinite(record["time"]) \
            or not isinstance(record.get("cue"), str):
        raise UserError(f"{metrics} line {number}: expected a tick object with a finite numeric \"time\" and a \"cue\"")
    time, cue = float(record["time"]), record["cue"]
    events = record.get("events") or []
    loss = record.get("loss")
    if loss is not None and not _number(loss):
        raise UserError(f"{metrics} line {number}: \"loss\" must be a number or null, not {loss!r}")

    show.ticks += 1
    show.first_time = min(show.first_time, time)
    show.last_time = max(show.last_time, time)
    started = isinstance(events, list) and "cue" in events
    if started:
        show.cue_starts.append((time, cue))
    learner = show.learners.get(cue)
    if learner is None:
        learner = show.learners[cue] = _Learner(scene=str(record.get("scene", "")))
    elif started or cue != current:
        # A cue entered again: break its line instead of joining across the cues in between.
        learner.times.append(time)
        learner.losses.append(math.nan)
    if loss is not None and math.isfinite(loss):
        learner.times.append(time)
        learner.losses.append(float(loss))
        learner.has_loss = True
        show.all_positive = show.all_positive and loss > 0
    else:
        learner.times.append(time)  # a tick without loss is a gap, not a zero
        learner.losses.append(math.nan)

    for entry in record.get("midi") or ():
        if isinstance(entry, list) and entry and isinstance(entry[0], str) \
                and entry[0].split(" ", 1)[0] == "note_on":
            stamp = entry[1] if len(entry) > 1 and _number(entry[1]) else time
            show.note_times.append(float(stamp))


FORMATS = ("png", "svg", "pdf")  # what --out's ending may ask for


def plot_metrics(metrics: Path, out: Path, size: tuple[int, int] = (1600, 900)) -> dict:
    """Draw the loss of every learner in the metrics log ``metrics`` into ``out``: a PNG, or an SVG
    or PDF when its name ends so (any other ending is bad input).

    ``size`` is (width, height) in pixels. The x axis is show time in seconds, spanning the log's
    first to last tick; the y axis is logarithmic when every loss is positive, linear otherwise.
    Returns ``{"ticks", "learners" (cue ids with loss, in order of first loss), "cues" (cue ids in
    the order they started, repeats kept), "notes" (note onsets), "warning" (None, or why the plot has
    no loss lines)}``. Raises UserError for an unreadable or malformed log and an unwritable ``out``.
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure registry

    metrics, out = Path(metrics), Path(out)
    kind = out.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise UserError(f"plot {out}: the name must end in {', '.join('.' + k for k in FORMATS)} "
                        f"(the kind of file written)")
    width, height = size
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise UserError(f"plot size must be positive whole pixels, not {size!r}")
    show = _read(metrics)
    learners = [cue for cue, learner in show.learners.items() if learner.has_loss]
    warning = None if learners else f"no loss in {metrics.name}: drew only the cue starts and notes"

    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    colours = _colours(len(learners))
    for colour, cue in zip(colours, learners):
        learner = show.learners[cue]
        label = f"{cue} ({learner.scene})" if learner.scene else cue
        axes.plot(learner.times, learner.losses, color=colour, linewidth=1.5, label=label)
    if learners and show.all_positive:
        axes.set_yscale("log")
    if not learners:
        axes.set_yticks([])
        axes.text(0.5, 0.5, "no loss recorded in this log", transform=axes.transAxes, ha="center",
                  va="center", color="0.4", fontsize=14)

    start, end = show.first_time, show.last_time
    if end <= start:  # one tick: give the axis some width
        start, end = start - 0.5, end + 0.5
    axes.set_xlim(start, end)
    top = axes.get_xaxis_transform()  # x in seconds, y in axes fraction
    for number, (time, cue) in enumerate(show.cue_starts):
        axes.axvline(time, color=CUE_LINE_COLOUR, linewidth=1.5, label="cue start" if number == 0 else None)
        axes.text(time, 0.99, f"{cue} ", transform=top, rotation=90, ha="left", va="top",
                  color=CUE_LINE_COLOUR, fontsize=9)
    if show.note_times:
        axes.vlines(show.note_times, 0.0, 0.03, transform=top, colors=NOTE_COLOUR, linewidth=0.8,
                    label=f"note onsets ({len(show.note_times)})")

    axes.set_xlabel("show time (s)")
    axes.set_ylabel("loss (log scale)" if axes.get_yscale() == "log" else "loss")
    axes.set_title(f"{metrics.name}: loss per learner over the show")
    axes.grid(True, which="major", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        figure.legend(loc="outside right upper", fontsize=9)

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, format=kind, dpi=DPI)
    except OSError as error:
        raise UserError(f"cannot write plot {out}: {error.strerror or error}") from None
    return {"ticks": show.ticks, "learners": learners, "cues": [cue for _, cue in show.cue_starts],
            "notes": len(show.note_times), "warning": warning}


def _colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"].colors
    return [palette[i % len(palette)] for i in range(count)]
