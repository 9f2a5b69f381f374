"""A description of the machine the benchmarks ran on, for the header of docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def _os_name() -> str:
    pretty = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return f"{pretty}, kernel {platform.release()} ({platform.machine()})"


def gl_renderer() -> str:
    """The OpenGL renderer a headless show gets (EGL), or why there is none."""
    try:
        import moderngl

        gl = moderngl.create_standalone_context(backend="egl", require=330)
        try:
            return f"{gl.info.get('GL_RENDERER', '?')}; OpenGL {gl.info.get('GL_VERSION', '?')}"
        finally:
            gl.release()
    except Exception as error:  # no EGL: say so in the report instead of failing it
        return f"unavailable ({error})"


def _jack_version() -> str:
    try:
        out = subprocess.run(["jackd", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    for line in (out.stdout + out.stderr).splitlines():
        if "version" in line:
            return line.strip()
    return "?"


def _load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, when the run started)"


def describe_machine() -> list[tuple[str, str]]:
    """(label, value) rows: CPU, cores, RAM, OS, Python, OpenGL renderer, JACK, load, date."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return [
        ("CPU", _cpuinfo_field("model name") or platform.processor() or "?"),
        ("Cores", f"{cores} logical" + (f" ({usable} usable by this process)" if usable != cores else "")),
        ("RAM", _memory_gib()),
        ("OS", _os_name()),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("GL renderer", gl_renderer()),
        ("JACK", _jack_version()),
        ("Load average", _load_average()),
        ("Date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
    ]
