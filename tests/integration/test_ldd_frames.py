"""Each part of the piece at a fixed seed, from a real performance and the bundled webcam video,
drawn offline on Mesa llvmpipe and compared with its golden image (tests/data/golden/ldd_*.png,
rewritten with SHOWRUNNER_UPDATE_GOLDEN=1; look at them before committing)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from engine.video_in import FileFrames
from engine.clock import VirtualTime
from engine.display import open_display
from engine.midi_file import MidiFilePerformer, load_performance
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import ROOT
from tests.integration.test_golden import GOLDEN

PERFORMANCE = ROOT / "assets" / "midi" / "prettymidi_example_type0_420tempos_sysex.mid"
VIDEO = ROOT / "assets" / "video" / "intel_asl_book.mkv"
UPDATE = os.environ.get("SHOWRUNNER_UPDATE_GOLDEN") == "1"
# seconds of the performance each part is played for (the first left-hand chord comes at 21.8 s)
PARTS = {"ldd_cubic": 8.0, "ldd_knot": 23.0, "ldd_split": 23.0, "ldd_bubbles": 8.0}


@pytest.mark.parametrize("scene", list(PARTS))
def test_each_part_at_a_fixed_seed_matches_its_golden_frame(tmp_path, egl, scene):
    path = tmp_path / "part.toml"
    path.write_text(f'title = "part"\nseed = 2021\nresolution = "320x180"\nfps = 30\n'
                    f'[[cues]]\nid = "part"\nscene = "{scene}"\n')
    setlist = load_setlist(path)
    display = open_display(setlist.settings.resolution, headless=True)
    try:
        show = Show(setlist, ShowOptions(duration=PARTS[scene], fps=30), VirtualTime(), display,
                    video_source=FileFrames(VIDEO))
        show.add_source(MidiFilePerformer(load_performance(PERFORMANCE), show.queue))
        assert show.load() == []
        summary = show.run()
        frame = display.read_pixels().copy()
    finally:
        display.close()
    assert summary.scene_errors == 0
    golden_path = GOLDEN / f"{scene}.png"
    if UPDATE:
        cv2.imwrite(str(golden_path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    golden = cv2.imread(str(golden_path), cv2.IMREAD_COLOR)
    assert golden is not None, f"golden image missing: {golden_path}"
    difference = np.abs(frame.astype(int) - cv2.cvtColor(golden, cv2.COLOR_BGR2RGB).astype(int))
    assert frame.max() > 200  # the curves (white) are there
    assert difference.mean() < 1.5
    assert (difference.max(axis=2) > 24).mean() < 0.005
