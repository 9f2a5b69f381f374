"""GLSL programs loaded by name from shaders/ (``NAME.vert`` + ``NAME.frag``), hot-reloaded.

- ``#include "file.glsl"`` (on a line of its own) pastes a file from the shader folders, once per
  program (a second include of the same file is skipped); compile errors name the real file and line.
- :meth:`ShaderLibrary.program` returns a :class:`LiveProgram`: a handle whose program is swapped
  when its files change. Vertex arrays made through it (:meth:`LiveProgram.vertex_array`) rebuild
  themselves for the new program at their next ``render``.
- :meth:`ShaderLibrary.watch` starts a watchfiles thread; :meth:`ShaderLibrary.reload_changed`,
  called by the show on the main thread before each frame, recompiles what changed. A compile error
  keeps the previous program running, is logged and kept in :attr:`ShaderLibrary.errors` (for the
  HUD) until the file compiles again.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import moderngl

from engine.errors import UserError

SHADER_DIR = Path(__file__).resolve().parent.parent / "shaders"
STAGES = {".vert": "vertex_shader", ".frag": "fragment_shader"}

log = logging.getLogger("showrunner.shaders")

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')
# Mesa: "0:12(5): error: ..."; NVIDIA: "0(12) : error ..."
_ERROR_LINE = re.compile(r"^\s*\d+[:(](\d+)\)?[\s(:]")


class ShaderError(UserError):
    """A shader that does not compile (or is missing): one line naming the file and line."""


@dataclass
class _Source:
    text: str
    lines: list[tuple[Path, int]]  # for each line of ``text``: (file, line number in that file)
    files: set[Path] = field(default_factory=set)


class LiveProgram:
    """A shader program by name whose GL program is replaced when its source files change.

    ``program["name"] = value`` sets a uniform, and does nothing when the current program lacks it
    (the GLSL compiler removes unused uniforms; an edit may remove one). ``program.program`` is the
    current ``moderngl.Program``; ``generation`` counts successful compiles.
    """

    # engine.snapshot: the restoring show's own, which its shader library swaps when a file is
    # edited (a restored copy would keep the program it was saved with).
    snapshot_by_reference = True

    def __init__(self, name: str, program: moderngl.Program, files: set[Path]) -> None:
        self.name = name
        self.program = program
        self.files = files
        self.generation = 1

    def __setitem__(self, uniform: str, value: Any) -> None:
        member = self.program.get(uniform, None)
        if member is not None:
            member.value = value

    def __contains__(self, uniform: str) -> bool:
        return uniform in self.program

    def vertex_array(self, content: list[tuple], index_buffer: moderngl.Buffer | None = None) -> LiveVertexArray:
        """A vertex array over ``content`` (moderngl's format) that follows this program's reloads."""
        return LiveVertexArray(self, content, index_buffer)

    def _swap(self, program: moderngl.Program, files: set[Path]) -> None:
        self.program, self.files = program, files
        self.generation += 1


class LiveVertexArray:
    """A moderngl vertex array rebuilt for the new program after a reload (at the next render)."""

    def __init__(self, program: LiveProgram, content: list[tuple], index_buffer: moderngl.Buffer | None) -> None:
        self.live = program
        self.content = content
        self.index_buffer = index_buffer
        self._build()

    def _build(self) -> None:
        gl = self.live.program.ctx
        self.vao = gl.vertex_array(self.live.program, self.content, index_buffer=self.index_buffer)
        self.generation = self.live.generation

    def render(self, mode: int = moderngl.TRIANGLES, vertices: int = -1, first: int = 0,
               instances: int = -1) -> None:
        if self.generation != self.live.generation:
            previous = self.vao
            try:
                self._build()
            except Exception as error:  # the new program lacks an attribute: keep drawing the old one
                log.error("shader '%s': reloaded program does not fit its vertex data: %s", self.live.name, error)
                self.vao, self.generation = previous, self.live.generation
        self.vao.render(mode, vertices=vertices, first=first, instances=instances)


class ShaderLibrary:
    """Compiles and caches the programs in ``folders`` (shaders/ by default), reloading them live."""

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, gl: moderngl.Context, folders: list[Path] | None = None) -> None:
        self.gl = gl
        self.folders = [Path(f) for f in (folders or [SHADER_DIR])]
        self._programs: dict[str, LiveProgram] = {}
        self.errors: dict[str, str] = {}  # program name -> the last compile error (one line)
        self._changed: set[Path] = set()
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    # Loading ----------------------------------------------------------------------------------------
    def _find(self, file_name: str) -> Path:
        for folder in self.folders:
            path = folder / file_name
            if path.is_file():
                return path.resolve()
        raise ShaderError(f"shader file not found: {file_name} (looked in {', '.join(map(str, self.folders))})")

    def _expand(self, path: Path, seen: set[Path] | None = None) -> _Source:
        seen = seen if seen is not None else set()
        seen.add(path)
        text, lines, files = [], [], {path}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _INCLUDE.match(line)
            if match is None:
                text.append(line)
                lines.append((path, number))
                continue
            try:
                included = self._find(match.group(1))
            except ShaderError:
                raise ShaderError(f"{path.name}:{number}: included file not found: {match.group(1)}") from None
            if included in seen:
                continue
            source = self._expand(included, seen)
            text.extend(source.text.splitlines())
            lines.extend(source.lines)
            files |= source.files
        return _Source("\n".join(text) + "\n", lines, files)

    def _compile(self, name: str) -> tuple[moderngl.Program, set[Path]]:
        sources = {stage: self._expand(self._find(name + suffix)) for suffix, stage in STAGES.items()}
        try:
            program = self.gl.program(**{stage: source.text for stage, source in sources.items()})
        except moderngl.Error as error:
            raise ShaderError(f"shader '{name}' does not compile: {_explain(str(error), sources)}") from None
        return program, set().union(*(source.files for source in sources.values()))

    def program(self, name: str) -> LiveProgram:
        """The program ``name`` (compiled on first use); :class:`ShaderError` if it does not compile."""
        live = self._programs.get(name)
        if live is None:
            program, files = self._compile(name)
            live = self._programs[name] = LiveProgram(name, program, files)
        return live

    def names(self) -> list[str]:
        """Every program in the folders: the names with both a .vert and a .frag file."""
        found: set[str] = set()
        for folder in self.folders:
            vertex = {p.stem for p in folder.glob("*.vert")}
            found |= {p.stem for p in folder.glob("*.frag") if p.stem in vertex}
        return sorted(found)

    def compile_all(self) -> list[str]:
        """Compile every program in the folders (preflight); one message per failure."""
        failures = []
        for name in self.names():
            try:
                self.program(name)
            except ShaderError as error:
                failures.append(str(error))
        return failures

    # Hot reload -------------------------------------------------------------------------------------
    def watch(self) -> None:
        """Watch the shader folders on a background thread (changes are applied by reload_changed)."""
        if self._thread is not None:
            return
        from watchfiles import watch

        self._stop = threading.Event()
        folders = [str(f) for f in self.folders if f.is_dir()]

        def run() -> None:
            try:
                for changes in watch(*folders, stop_event=self._stop, debounce=50, step=20,
                                     raise_interrupt=False):
                    for _, path in changes:
                        self.notice_change(Path(path))
            except Exception:  # watching is a convenience: the show goes on without it
                log.exception("shader watcher stopped")

        self._thread = threading.Thread(target=run, name="shader-watch", daemon=True)
        self._thread.start()

    def notice_change(self, path: Path) -> None:
        """Mark a file changed (what the watcher does; also for tests and tools)."""
        with self._lock:
            self._changed.add(Path(path).resolve())

    def reload_changed(self) -> list[str]:
        """Recompile the programs whose files changed; returns events ("shader_reloaded" /
        "shader_error"). Call on the thread that owns the GL context, between frames."""
        with self._lock:
            changed, self._changed = self._changed, set()
        if not changed:
            return []
        events = []
        for name, live in self._programs.items():
            if not live.files & changed:
                continue
            try:
                program, files = self._compile(name)
            except ShaderError as error:
                self.errors[name] = str(error)
                log.error("%s (the previous version keeps running)", error)
                events.append("shader_error")
                continue
            live._swap(program, files)
            self.errors.pop(name, None)
            log.info("shader '%s' reloaded", name)
            events.append("shader_reloaded")
        return events

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


def _explain(message: str, sources: dict[str, _Source]) -> str:
    """The compiler's first error, with its line mapped back to the file (through #include)."""
    stage = next((s for s in sources if s in message), None)
    for line in message.splitlines():
        if "error" not in line.lower():
            continue
        match = _ERROR_LINE.match(line)
        detail = line.split("error", 1)[1].lstrip(":() ").strip()
        if match and stage is not None:
            number = int(match.group(1))
            lines = sources[stage].lines
            if 1 <= number <= len(lines):
                path, original = lines[number - 1]
                return f"{path.name}:{original}: {detail}"
        return detail
    first = [line for line in message.splitlines() if line.strip()]
    return " | ".join(first[:3])
