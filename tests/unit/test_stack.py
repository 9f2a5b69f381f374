"""SceneStack: deferred push/pop/switch, hook order, event fall-through, and failure isolation."""

from __future__ import annotations

from typing import ClassVar

import pytest

from engine.midi import ControlChange, MidiEvent, NoteOff, NoteOn
from engine.scene import Scene, known_scenes, scene_class
from engine.stack import SceneStack


class Recorder(Scene):
    """A fake scene that appends ``(label, hook)`` to a shared list; no ``name``, so not registered."""

    consumes: ClassVar[tuple[type, ...]] = ()

    def __init__(self, label: str, calls: list, consumes: tuple[type, ...] | None = None) -> None:
        super().__init__()
        self.label = label
        self.calls = calls
        if consumes is not None:
            self.consumes = consumes
        self.events: list[MidiEvent] = []

    def _record(self, hook: str, *args: object) -> None:
        self.calls.append((self.label, hook, *args))

    def enter(self) -> None:
        self._record("enter")

    def exit(self) -> None:
        self._record("exit")

    def pause(self) -> None:
        self._record("pause")

    def resume(self) -> None:
        self._record("resume")

    def on_midi(self, event: MidiEvent) -> bool:
        self.events.append(event)
        self._record("on_midi")
        return isinstance(event, self.consumes)

    def tick(self, dt: float) -> None:
        self._record("tick", dt)

    def draw(self, alpha: float) -> None:
        self._record("draw", alpha)


class Overlay(Recorder):
    overlay = True


class Exploding(Recorder):
    def tick(self, dt: float) -> None:
        self._record("tick", dt)
        raise RuntimeError("boom")

    def draw(self, alpha: float) -> None:
        raise ValueError("no draw")


class ExplodingOverlay(Exploding):
    overlay = True


@pytest.fixture
def calls() -> list:
    return []


def _stack_with(*scenes: Scene) -> SceneStack:
    stack = SceneStack(on_error=lambda scene, hook, error: None)
    for scene in scenes:
        stack.push(scene)
    stack.apply_pending()
    return stack


def test_fake_scenes_without_a_name_are_not_registered() -> None:
    assert Recorder.name is None and Overlay.name is None
    assert not any(issubclass(scene_class(name), Recorder) for name in known_scenes())


# Hook order.
def test_push_pauses_the_scene_below_then_enters_the_new_one(calls: list) -> None:
    base, top = Recorder("base", calls), Recorder("top", calls)
    stack = _stack_with(base)
    calls.clear()
    stack.push(top)
    assert stack.apply_pending() is True
    assert calls == [("base", "pause"), ("top", "enter")]
    assert stack.scenes == (base, top)
    assert stack.top is top


def test_push_onto_an_empty_stack_only_enters(calls: list) -> None:
    stack = SceneStack()
    stack.push(Recorder("only", calls))
    stack.apply_pending()
    assert calls == [("only", "enter")]


def test_pushing_an_overlay_does_not_pause_the_scene_below(calls: list) -> None:
    stack = _stack_with(Recorder("base", calls))
    calls.clear()
    stack.push(Overlay("hud", calls))
    stack.apply_pending()
    assert calls == [("hud", "enter")]


def test_pop_exits_the_top_then_resumes_the_scene_below(calls: list) -> None:
    base, top = Recorder("base", calls), Recorder("top", calls)
    stack = _stack_with(base, top)
    calls.clear()
    stack.pop()
    stack.apply_pending()
    assert calls == [("top", "exit"), ("base", "resume")]
    assert stack.scenes == (base,)


def test_popping_an_overlay_does_not_resume_the_scene_below(calls: list) -> None:
    stack = _stack_with(Recorder("base", calls), Overlay("hud", calls))
    calls.clear()
    stack.pop()
    stack.apply_pending()
    assert calls == [("hud", "exit")]


def test_pop_on_an_empty_stack_does_nothing(calls: list) -> None:
    stack = SceneStack()
    stack.pop()
    stack.apply_pending()
    assert stack.scenes == ()
    assert stack.errors == 0


def test_switch_exits_the_top_then_enters_the_new_one_without_pause_or_resume(calls: list) -> None:
    base, old, new = Recorder("base", calls), Recorder("old", calls), Recorder("new", calls)
    stack = _stack_with(base, old)
    calls.clear()
    stack.switch(new)
    stack.apply_pending()
    assert calls == [("old", "exit"), ("new", "enter")]
    assert stack.scenes == (base, new)


def test_replace_all_exits_every_scene_top_first_then_enters_the_new_one(calls: list) -> None:
    a, b, c, fresh = Recorder("a", calls), Recorder("b", calls), Overlay("c", calls), Recorder("fresh", calls)
    stack = _stack_with(a, b, c)
    calls.clear()
    stack.replace_all(fresh)
    stack.apply_pending()
    assert calls == [("c", "exit"), ("b", "exit"), ("a", "exit"), ("fresh", "enter")]
    assert stack.scenes == (fresh,)


# Deferred requests.
def test_requests_do_nothing_until_apply_pending(calls: list) -> None:
    base = Recorder("base", calls)
    stack = _stack_with(base)
    calls.clear()
    stack.push(Recorder("x", calls))
    stack.switch(Recorder("y", calls))
    stack.pop()
    stack.replace_all(Recorder("z", calls))
    assert calls == []
    assert stack.scenes == (base,)
    assert stack.pending is True
    assert stack.apply_pending() is True
    assert stack.pending is False
    assert stack.scenes[-1].label == "z"


def test_queued_requests_apply_in_the_order_they_were_made(calls: list) -> None:
    stack = SceneStack()
    a, b, c = Recorder("a", calls), Recorder("b", calls), Recorder("c", calls)
    stack.push(a)
    stack.push(b)
    stack.switch(c)
    stack.pop()
    stack.apply_pending()
    assert calls == [("a", "enter"), ("a", "pause"), ("b", "enter"), ("b", "exit"), ("c", "enter"),
                     ("c", "exit"), ("a", "resume")]
    assert stack.scenes == (a,)


def test_apply_pending_with_nothing_queued_reports_no_change(calls: list) -> None:
    stack = _stack_with(Recorder("base", calls))
    calls.clear()
    assert stack.apply_pending() is False
    assert calls == []


def test_request_made_during_tick_applies_at_the_next_apply_pending(calls: list) -> None:
    stack = SceneStack()
    follower = Recorder("follower", calls)

    class Leaver(Recorder):
        def tick(self, dt: float) -> None:
            super().tick(dt)
            stack.switch(follower)

    stack.push(Leaver("leaver", calls))
    stack.apply_pending()
    stack.tick(0.01)
    assert [c for c in calls if c[0] == "follower"] == []
    assert stack.top.label == "leaver"
    stack.apply_pending()
    assert calls[-2:] == [("leaver", "exit"), ("follower", "enter")]
    assert stack.top is follower


def test_request_made_inside_enter_applies_at_the_next_apply_pending(calls: list) -> None:
    stack = SceneStack()
    second = Recorder("second", calls)

    class Chainer(Recorder):
        def enter(self) -> None:
            super().enter()
            stack.push(second)

    first = Chainer("first", calls)
    stack.push(first)
    stack.apply_pending()
    assert calls == [("first", "enter")]
    assert stack.scenes == (first,)
    assert stack.pending is True
    stack.apply_pending()
    assert calls == [("first", "enter"), ("first", "pause"), ("second", "enter")]


# Events.
def test_overlay_consuming_note_ons_stops_them_but_lets_ccs_fall_to_the_scene_below(calls: list) -> None:
    base = Recorder("base", calls, consumes=(NoteOn, ControlChange))
    hud = Overlay("hud", calls, consumes=(NoteOn,))
    stack = _stack_with(base, hud)
    note, cc = NoteOn(60, 100), ControlChange(64, 127)
    assert stack.dispatch(note) is True
    assert hud.events == [note] and base.events == []
    assert stack.dispatch(cc) is True
    assert hud.events == [note, cc] and base.events == [cc]


def test_event_nobody_consumes_reaches_every_active_scene_top_down_and_reports_false(calls: list) -> None:
    stack = _stack_with(Recorder("base", calls), Overlay("hud", calls), Overlay("top", calls))
    calls.clear()
    assert stack.dispatch(NoteOff(60)) is False
    assert calls == [("top", "on_midi"), ("hud", "on_midi"), ("base", "on_midi")]


def test_opaque_scene_on_top_blocks_events_ticks_and_draws_of_the_paused_scene(calls: list) -> None:
    paused = Recorder("paused", calls, consumes=(NoteOn,))
    cover = Recorder("cover", calls, consumes=())
    stack = _stack_with(paused, cover)
    calls.clear()
    assert stack.active() == [cover]
    assert stack.dispatch(NoteOn(60, 90)) is False
    stack.tick(1 / 60)
    stack.draw(0.5)
    assert paused.events == []
    assert [c for c in calls if c[0] == "paused"] == []
    assert calls == [("cover", "on_midi"), ("cover", "tick", 1 / 60), ("cover", "draw", 0.5)]


def test_active_scenes_are_the_top_opaque_scene_and_the_overlays_above_it(calls: list) -> None:
    a, b, h1, h2 = Recorder("a", calls), Recorder("b", calls), Overlay("h1", calls), Overlay("h2", calls)
    stack = _stack_with(a, b, h1, h2)
    assert stack.active() == [b, h1, h2]


def test_only_overlays_are_all_active(calls: list) -> None:
    h1, h2 = Overlay("h1", calls), Overlay("h2", calls)
    stack = _stack_with(h1, h2)
    assert stack.active() == [h1, h2]


def test_draw_and_tick_run_bottom_up(calls: list) -> None:
    stack = _stack_with(Recorder("base", calls), Overlay("mid", calls), Overlay("top", calls))
    calls.clear()
    stack.tick(0.02)
    stack.draw(0.25)
    assert calls == [("base", "tick", 0.02), ("mid", "tick", 0.02), ("top", "tick", 0.02),
                     ("base", "draw", 0.25), ("mid", "draw", 0.25), ("top", "draw", 0.25)]


# Failure isolation.
def test_scene_whose_tick_raises_does_not_stop_other_scenes_and_is_counted(calls: list) -> None:
    failures = []
    stack = SceneStack(on_error=lambda scene, hook, error: failures.append((scene.label, hook, str(error))))
    stack.push(Recorder("base", calls))
    stack.push(Overlay("hud", calls))
    stack.push(ExplodingOverlay("bad", calls))
    stack.push(Overlay("after", calls))
    stack.apply_pending()
    calls.clear()
    stack.tick(0.01)
    stack.tick(0.01)
    assert [c[0] for c in calls] == ["base", "hud", "bad", "after"] * 2
    assert stack.errors == 2
    assert failures == [("bad", "tick", "boom")] * 2
    stack.draw(1.0)
    assert stack.errors == 3
    assert failures[-1] == ("bad", "draw", "no draw")
    assert [c[0] for c in calls[-3:]] == ["base", "hud", "after"]


def test_failing_hook_without_on_error_is_logged_not_raised(calls: list, caplog: pytest.LogCaptureFixture) -> None:
    stack = SceneStack()
    stack.push(Exploding("bad", calls))
    stack.apply_pending()
    stack.tick(0.01)
    assert stack.errors == 1
    assert "Exploding: tick failed" in caplog.text


def test_scene_whose_on_midi_raises_lets_the_event_fall_through(calls: list) -> None:
    class BadListener(Overlay):
        def on_midi(self, event: MidiEvent) -> bool:
            raise KeyError("oops")

    base = Recorder("base", calls, consumes=(NoteOn,))
    stack = _stack_with(base, BadListener("bad", calls))
    assert stack.dispatch(NoteOn(61, 70)) is True
    assert base.events == [NoteOn(61, 70)]
    assert stack.errors == 1


def test_opaque_push_over_an_overlay_pauses_both_scenes_that_stop_running() -> None:
    calls: list = []
    base, hud, cover = Recorder("base", calls), Overlay("hud", calls), Recorder("cover", calls)
    stack = _stack_with(base, hud)
    calls.clear()
    stack.push(cover)
    stack.apply_pending()
    assert calls == [("hud", "pause"), ("base", "pause"), ("cover", "enter")]
    assert stack.active() == [cover]


def test_switching_an_opaque_top_to_an_overlay_resumes_the_scene_below() -> None:
    calls: list = []
    base, cover, hud = Recorder("base", calls), Recorder("cover", calls), Overlay("hud", calls)
    stack = _stack_with(base, cover)
    calls.clear()
    stack.switch(hud)
    stack.apply_pending()
    assert calls == [("cover", "exit"), ("base", "resume"), ("hud", "enter")]
    assert stack.active() == [base, hud]


def test_popping_an_opaque_scene_resumes_the_scene_and_overlay_below() -> None:
    calls: list = []
    base, hud, cover = Recorder("base", calls), Overlay("hud", calls), Recorder("cover", calls)
    stack = _stack_with(base, hud, cover)
    calls.clear()
    stack.pop()
    stack.apply_pending()
    assert calls == [("cover", "exit"), ("base", "resume"), ("hud", "resume")]
