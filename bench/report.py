"""Benchmark results as a rich table (terminal) and as markdown (docs/benchmarks.md)."""

from __future__ import annotations

from rich.table import Table

from bench.result import BenchResult, Figure


def _verdict(figure: Figure) -> str:
    if figure.met is None:
        return ""
    return "met" if figure.met else "NOT met"


def results_table(results: list[BenchResult]) -> Table:
    table = Table(title="showrunner benchmarks")
    for column, justify in (("benchmark", "left"), ("figure", "left"), ("value", "right"),
                            ("goal", "right"), ("", "left")):
        table.add_column(column, justify=justify)
    for result in results:
        if result.error is not None:
            table.add_row(result.title, "[red]not run[/red]", "", "", result.error)
            continue
        for number, figure in enumerate(result.figures):
            verdict = _verdict(figure)
            style = {"met": "green", "NOT met": "red"}.get(verdict, "")
            table.add_row(result.title if number == 0 else "", figure.label, figure.formatted(),
                          figure.goal, f"[{style}]{verdict}[/{style}]" if style else "",
                          end_section=number == len(result.figures) - 1)
    return table


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(results: list[BenchResult], machine: list[tuple[str, str]], command: str) -> str:
    lines = ["# Benchmarks", "",
             f"Measured by `{command}` (`make bench`), which rewrites this file on every run; the "
             "figures below are from the run described here.", "",
             "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {_escape(value)} |" for label, value in machine]
    lines += ["", "## Results", "", "| Benchmark | Figure | Value | Goal | |", "|---|---|---:|---:|---|"]
    for result in results:
        if result.error is not None:
            lines.append(f"| {result.title} | not run | | | {_escape(result.error)} |")
            continue
        for figure in result.figures:
            lines.append(f"| {result.title} | {figure.label} | {figure.formatted()} | "
                         f"{_escape(figure.goal)} | {_verdict(figure)} |")
    lines += ["", "## How each is measured", ""]
    for result in results:
        lines += [f"### {result.title}", "", result.method, "", result.goal, ""]
        if result.error is not None:
            lines += [f"Not run on this machine: {result.error}", ""]
        for note in result.notes:
            lines += [f"- {note}"]
        if result.notes:
            lines.append("")
        lines += [f"_Took {result.seconds:.1f} s._", ""]
    return "\n".join(lines)


def splice(document: str, results: list[BenchResult], note: str) -> str:
    """``document`` (a whole run's markdown) with the rows and the section of each of ``results``
    replaced by the new ones (added at the end when it had none), the others left as they were;
    ``note`` goes under each replaced section (when and how it was measured)."""
    new = markdown(results, [], "").splitlines()
    lines = document.splitlines()
    for result in results:
        rows = [line for line in new if line.startswith(f"| {result.title} |")]
        old_rows = [n for n, line in enumerate(lines) if line.startswith(f"| {result.title} |")]
        if old_rows:
            at, dropped = old_rows[0], set(old_rows)
            lines = [line for n, line in enumerate(lines) if n not in dropped]
        else:  # after the last row of the results table
            table_end = lines.index("## How each is measured")
            at = max(n for n in range(table_end) if lines[n].startswith("| ")) + 1
        lines[at:at] = rows
        section = _section(new, result.title)
        while section and not section[-1]:
            section.pop()
        section += ["", note, ""]
        start, end = _section_span(lines, result.title)
        lines[start:end] = section
    return "\n".join(lines) + ("\n" if document.endswith("\n") else "")


def _section_span(lines: list[str], title: str) -> tuple[int, int]:
    """Where the section ``### title`` starts and ends in ``lines`` (both at the end if absent)."""
    heading = f"### {title}"
    if heading not in lines:
        return len(lines), len(lines)
    start = lines.index(heading)
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("### ")), len(lines))
    return start, end


def _section(lines: list[str], title: str) -> list[str]:
    start, end = _section_span(lines, title)
    return lines[start:end]
