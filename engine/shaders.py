"""GLSL programs loaded by name from shaders/ (``NAME.vert`` + ``NAME.frag``), compiled once and cached."""

from __future__ import annotations

from pathlib import Path

import moderngl

from engine.errors import UserError

SHADER_DIR = Path(__file__).resolve().parent.parent / "shaders"


class ShaderLibrary:
    def __init__(self, gl: moderngl.Context, folders: list[Path] | None = None) -> None:
        self.gl = gl
        self.folders = folders or [SHADER_DIR]
        self._programs: dict[str, moderngl.Program] = {}

    def _source(self, name: str, suffix: str) -> str:
        for folder in self.folders:
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path.read_text(encoding="utf-8")
        raise UserError(f"shader not found: {name}{suffix} (looked in {', '.join(map(str, self.folders))})")

    def program(self, name: str) -> moderngl.Program:
        """The compiled program ``name``; a compile error is reported with the shader's name."""
        program = self._programs.get(name)
        if program is None:
            try:
                program = self.gl.program(vertex_shader=self._source(name, ".vert"),
                                          fragment_shader=self._source(name, ".frag"))
            except moderngl.Error as error:
                first = str(error).strip().splitlines()
                raise UserError(f"shader '{name}' does not compile: {' | '.join(first[:3])}") from None
            self._programs[name] = program
        return program
