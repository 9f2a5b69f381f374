"""The show's window on a real X server (Xvfb): a window opened hidden (a standby show's) and shown
later takes its events like any other."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT

# Shown, then the window's events read while the interpreter frees and reuses memory (as a show
# does): with pygame's window wrapper freed after showing, this died of SIGSEGV every time.
SHOWN_THEN_POLLED = textwrap.dedent("""
    import gc
    from engine.display import open_display
    display = open_display((160, 90), headless=False, hidden=True)
    display.show_window()
    kept, kinds = [], set()
    for i in range(300):
        kept.append([object() for _ in range(50)] + [str(i) * 3, (i, i + 1)])
        gc.collect()
        for event in display.poll_events():
            kinds.add(event.type)
            kept.append(repr(getattr(event, "window", None)))
        display.begin_frame()
        display.end_frame()
    import pygame
    print("shown" if pygame.WINDOWSHOWN in kinds else "no WINDOWSHOWN event", flush=True)
    display.close()
""")


def test_a_window_opened_hidden_is_shown_and_polled_without_a_fault(x_display):
    done = subprocess.run([sys.executable, "-c", SHOWN_THEN_POLLED], cwd=ROOT, env=x_display,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("shown"), done.stdout
