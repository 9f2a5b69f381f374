"""docs/benchmarks.md: a partial run with --update replaces only its own benchmarks' rows and sections."""

from __future__ import annotations

from bench.report import markdown, splice
from bench.result import BenchResult, Figure


def _result(key: str, method: str, *values: float) -> BenchResult:
    return BenchResult(key=key, title=key.upper(), method=method, goal=f"goal {key}",
                       figures=[Figure(f"{key}{n}", value, "ms") for n, value in enumerate(values)])


def test_an_update_replaces_the_rows_and_section_of_each_benchmark_it_ran_and_keeps_the_rest() -> None:
    document = markdown([_result("a", "method a", 1.0), _result("b", "method b", 2.0, 3.0),
                         _result("c", "method c", 4.0)], [("cores", "2")], "python -m bench")

    updated = splice(document, [_result("b", "method b, new", 5.0), _result("d", "method d", 6.0)],
                     "_measured apart_")

    rows = [line for line in updated.splitlines() if line.startswith("| ") and "ms" in line]
    assert rows == ["| A | a0 | 1.00 ms |  |  |", "| B | b0 | 5.00 ms |  |  |",
                    "| C | c0 | 4.00 ms |  |  |", "| D | d0 | 6.00 ms |  |  |"]
    sections = updated.split("### ")[1:]
    assert [section.splitlines()[0] for section in sections] == ["A", "B", "C", "D"]
    assert "method b, new" in sections[1] and "method b\n" not in sections[1]
    assert sections[1].rstrip().endswith("_measured apart_")
    assert sections[3].rstrip().endswith("_measured apart_")
    assert sections[0] == document.split("### ")[1] and sections[2] == document.split("### ")[3]
    assert "| cores | 2 |" in updated


def test_an_update_names_its_machine_when_it_is_not_the_documents() -> None:
    from bench.__main__ import _where

    doc = "| | |\n|---|---|\n| CPU | AMD EPYC |\n| Cores | 2 logical |\n"
    assert _where([("CPU", "AMD EPYC"), ("Cores", "2 logical")], doc) == "on the machine described above"
    assert _where([("CPU", "Intel Xeon"), ("Cores", "2 logical")], doc) == \
        "on another machine than the one described above (Intel Xeon, 2 logical cores)"
    assert "another machine" in _where([("CPU", "AMD EPYC"), ("Cores", "16 logical")], doc)
