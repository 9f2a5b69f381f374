"""Shaders on real OpenGL (Mesa EGL): loading by name, #include, errors with file and line, hot reload
through the real watchfiles thread, preflight of every shader."""

from __future__ import annotations

import json
import time
from pathlib import Path

import moderngl
import numpy as np
import pytest

from engine.clock import VirtualTime
from engine.display import FULLSCREEN_VERT, open_display
from engine.scene import Scene
from engine.setlist import load_setlist
from engine.shaders import SHADER_DIR, ShaderError, ShaderLibrary
from engine.show import Show, ShowOptions

FRAG = """#version 330
#include "tint.glsl"
in vec2 uv;
out vec4 color;
void main() { color = vec4(tint(), 1.0); }
"""


def tint(rgb: str) -> str:
    return f"vec3 tint() {{ return vec3({rgb}); }}\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "fill.vert").write_text(FULLSCREEN_VERT.lstrip())
    (tmp_path / "fill.frag").write_text(FRAG)
    (tmp_path / "tint.glsl").write_text(tint("1.0, 0.0, 0.0"))
    return tmp_path


def draw(gl: moderngl.Context, library: ShaderLibrary) -> np.ndarray:
    """Fill an 8x8 framebuffer with the 'fill' program; the centre pixel's RGB."""
    target = gl.simple_framebuffer((8, 8))
    target.use()
    quad = gl.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4").tobytes())
    library.program("fill").vertex_array([(quad, "2f", "in_pos")]).render(moderngl.TRIANGLE_STRIP)
    pixels = np.frombuffer(target.read(components=3), np.uint8).reshape(8, 8, 3)
    return pixels[4, 4]


def reload_until(library: ShaderLibrary, seconds: float = 10.0) -> list[str]:
    """What the main loop does before each frame, until the watcher has noticed a change."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = library.reload_changed()
        if events:
            return events
        time.sleep(0.02)
    raise AssertionError("the shader watcher noticed nothing")


def test_included_files_are_pasted_and_errors_name_the_file_and_line(gl, folder):
    library = ShaderLibrary(gl, [folder])
    assert list(draw(gl, library)) == [255, 0, 0]
    (folder / "tint.glsl").write_text("// helpers\n" + tint("1.0, 0.0 0.0"))
    broken = ShaderLibrary(gl, [folder])
    with pytest.raises(ShaderError, match=r"shader 'fill' does not compile: tint\.glsl:2: .*syntax error"):
        broken.program("fill")
    (folder / "fill.frag").write_text(FRAG.replace('"tint.glsl"', '"missing.glsl"'))
    with pytest.raises(ShaderError, match=r"fill\.frag:2: included file not found: missing\.glsl"):
        ShaderLibrary(gl, [folder]).program("fill")


def test_a_shader_saved_during_a_run_is_recompiled_and_a_broken_one_keeps_the_old_program(gl, folder):
    library = ShaderLibrary(gl, [folder])
    assert list(draw(gl, library)) == [255, 0, 0]
    library.watch()
    try:
        time.sleep(0.3)  # the watcher's first scan
        (folder / "tint.glsl").write_text(tint("0.0, 1.0, 0.0"))
        assert reload_until(library) == ["shader_reloaded"]
        assert list(draw(gl, library)) == [0, 255, 0]

        (folder / "fill.frag").write_text(FRAG.replace("vec4(tint(), 1.0)", "vec4(tint(), 1.0) * missing"))
        assert reload_until(library) == ["shader_error"]
        assert list(draw(gl, library)) == [0, 255, 0]  # the previous program still draws
        assert library.errors["fill"].startswith("shader 'fill' does not compile: fill.frag:5: ")
        assert "missing" in library.errors["fill"]

        (folder / "fill.frag").write_text(FRAG.replace("vec4(tint(), 1.0)", "vec4(tint().bgr, 1.0)"))
        assert reload_until(library) == ["shader_reloaded"]
        assert "fill" not in library.errors
        assert list(draw(gl, library)) == [0, 255, 0][::-1]
    finally:
        library.close()


def test_uniforms_missing_from_a_reloaded_program_are_ignored(gl, folder):
    (folder / "fill.frag").write_text(FRAG.replace("vec4(tint(), 1.0)", "vec4(tint() * gain, 1.0)")
                                      .replace("out vec4 color;", "uniform float gain;\nout vec4 color;"))
    library = ShaderLibrary(gl, [folder])
    program = library.program("fill")
    program["gain"] = 0.5
    assert "gain" in program
    program["no_such_uniform"] = 1.0  # silently nothing: an edit may remove a uniform
    assert abs(int(draw(gl, library)[0]) - 128) <= 1


def test_preflight_compiles_every_shader_and_reports_each_broken_one(gl, folder):
    (folder / "other.vert").write_text(FULLSCREEN_VERT.lstrip())
    (folder / "other.frag").write_text("#version 330\nout vec4 c;\nvoid main() { c = nope; }\n")
    (folder / "lonely.frag").write_text("not a program: no .vert beside it")
    library = ShaderLibrary(gl, [folder])
    assert library.names() == ["fill", "other"]
    failures = library.compile_all()
    assert len(failures) == 1 and failures[0].startswith("shader 'other' does not compile: other.frag:3:")


def test_every_bundled_shader_compiles(gl):
    library = ShaderLibrary(gl, [SHADER_DIR])
    assert library.names()
    assert library.compile_all() == []


class Fill(Scene):
    """Fills the frame with the 'fill' program (a test shader folder)."""

    name = "test_fill"

    def load(self) -> None:
        quad = self.context.gl.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4").tobytes())
        self.vao = self.context.shaders.program("fill").vertex_array([(quad, "2f", "in_pos")])

    def draw(self, alpha: float) -> None:
        self.vao.render(moderngl.TRIANGLE_STRIP)


def test_a_show_reloads_a_saved_shader_and_survives_a_broken_one(tmp_path, folder, egl):
    setlist_path = tmp_path / "fill.toml"
    setlist_path.write_text('title = "fill"\nresolution = "64x36"\n[[cues]]\nid = "only"\nscene = "test_fill"\n')
    setlist = load_setlist(setlist_path)
    metrics = tmp_path / "metrics.jsonl"
    display = open_display(setlist.settings.resolution, headless=True)
    display.shaders.folders = [folder, SHADER_DIR]  # the test's 'fill' first; the HUD's own shaders
    colours = []
    try:
        show = Show(setlist, ShowOptions(duration=1.0, metrics=metrics, fps=30), VirtualTime(), display)
        show.load()

        def after_frame() -> None:
            colours.append(display.read_pixels()[18, 32].tolist())
            edits = {5: tint("0.0, 1.0, 0.0"), 10: tint("0.0, 0.0 1.0"), 15: tint("0.0, 0.0, 1.0")}
            if len(colours) in edits:  # what saving the file in an editor does, seen by the watcher
                (folder / "tint.glsl").write_text(edits[len(colours)])
                display.shaders.notice_change(folder / "tint.glsl")

        show.frame_sink = after_frame
        show.run()
    finally:
        display.close()
    events = [event for line in metrics.read_text().splitlines() for event in json.loads(line)["events"]]
    assert events.count("shader_reloaded") == 2 and events.count("shader_error") == 1
    assert colours[2] == [255, 0, 0] and colours[7] == [0, 255, 0]
    assert colours[12] == [0, 255, 0]  # the broken save: the previous program still draws
    assert colours[-1] == [0, 0, 255]
    # the HUD keeps the last error, with the file and line of the broken save
    assert show.hud.state.last_error.startswith("shader 'fill' does not compile: tint.glsl:1: ")
