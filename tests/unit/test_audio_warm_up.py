"""The audio process pays numba's first-use costs before its device opens, not in the callback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter (in this one, other tests may have loaded the kernels already): warm up
# as the audio process does, note which compiled kernels are loaded, then play everything a show
# can send (every command kind, stealing, pedal, release, panic) and look again.
SCRIPT = """
import json, sys
from numba.core.registry import CPUDispatcher
from engine.audio import command_ring as cmd, kernels
from engine.audio.config import MixerConfig
from scenes.ldd.sound import kernels as overtone_kernels
from engine.audio.rack import overtone_rack
from engine.audio.rack import legacy_rack_config, Rack

config, piano = MixerConfig(**json.loads(sys.argv[1])), sys.argv[2] == "piano"
def loaded():
    return {f"{module.__name__}.{name}": len(f.signatures) for module in (kernels, overtone_kernels)
            for name, f in vars(module).items() if isinstance(f, CPUDispatcher)}
Rack(legacy_rack_config(config, piano)).warm_up()
before = loaded()
mixer = overtone_rack(config, piano=piano)
for voice in range(6):
    mixer.apply(cmd.NOTE_ON, voice, 40 + 7 * voice, 100)
    mixer.render()
for kind, voice, note, value in [(cmd.DETUNE, cmd.ALL_VOICES, 0, 0.2), (cmd.DETUNE, 1, 47, -0.1),
                                 (cmd.SUSTAIN, 0, 0, 127), (cmd.NOTE_OFF, 2, 54, 0), (cmd.SUSTAIN, 0, 0, 0),
                                 (cmd.NOTE_OFF, 3, 61, 0), (cmd.GAIN, 0, 0, -6.0), (cmd.TUNE, 2, 0, 14.0),
                                 (cmd.ALL_NOTES_OFF, 0, 0, 0), (cmd.NOTE_ON, 9, 60, 90), (cmd.PANIC, 0, 0, 0)]:
    mixer.apply(kind, voice, note, value)
    for _ in range(3):
        mixer.render()
print(json.dumps([before, loaded()]))
"""


@pytest.mark.parametrize("settings,piano", [({"envelope": "adsr", "polyphony": 4}, "piano"),
                                            ({"polyphony": 4, "partials": 8}, "none")])
def test_after_the_warm_up_a_show_loads_no_compiled_kernel(settings, piano):
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(settings), piano], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before["scenes.ldd.sound.kernels.overtone_block"] == 1
    assert after == before, "first used in the show, after the warm-up"


# The same for an audio process whose rack is all granulators (its compiled one-call block, its
# general path, the views a scene reads, the limiter's knee, the grain tools' modes).
GRANULAR_SCRIPT = """
import json
import numpy as np
from numba.core.registry import CPUDispatcher
from engine.audio import arena, command_ring as cmd, grain_schedulers, granular_kernels, limiter
from engine.audio import rack_block, sampler_kernels, shared
from engine.audio.pool import SamplePool
from engine.audio.rack import InstrumentSpec, RackConfig
from engine.audio.server import AudioServer, ServerSettings

MODULES = (arena, grain_schedulers, granular_kernels, limiter, rack_block, sampler_kernels, shared)
def loaded():
    return {f"{module.__name__}.{name}": len(f.signatures) for module in MODULES
            for name, f in vars(module).items() if isinstance(f, CPUDispatcher)}
pool = SamplePool.create(8 * 48000, max_tables=2)
state = shared.SharedAudioState.create()
try:
    mono = pool.allocate("mono", 48000, 1)
    pool.fill(mono, np.sin(np.arange(48000) * 0.05))
    stereo = pool.allocate("stereo", 48000, 2)
    pool.fill(stereo, np.stack([np.sin(np.arange(48000) * 0.03)] * 2, 1))
    specs = [InstrumentSpec(name="a", kind="granulator", bus="one", settings={"table": mono, "density": 300.0}),
             InstrumentSpec(name="b", kind="granulator", bus="two",
                            settings={"mode": "salad", "tables": [mono, stereo]})]
    rack = RackConfig(buses={"one": 0.0, "two": 0.0}, instruments=specs, notes=["a", "b"], pool=str(pool.path))
    server = AudioServer(ServerSettings(state=str(state.path), rack=rack, realtime=False),
                         shared.SharedAudioState.attach(state.path))
    before = loaded()
    fast = server._fast
    assert fast is not None
    state.ring.push(cmd.NOTE_ON, 60, 60, 127.0)
    for block in range(200):
        if block == 20:
            state.ring.push(cmd.GAIN, 0, 0, 24.0, target=cmd.RACK)  # the limiter's knee
        if block == 40:
            state.read_view(0, 6)
        if block == 60:
            state.ring.push(cmd.SET, 0, grain_schedulers.WINDOW, 1.0, target=0)  # tukey
            state.ring.push(cmd.GRAIN, 10, stereo, 0.5, target=0, a=0.1, b=0.05, c=1.5)
        if block == 100:
            server._fast = None  # the general path
        if block == 150:
            server._fast = fast
            state.ring.push(cmd.PANIC, 0, 0, 0.0)
        server.callback(None, 256, None, 0)
    print(json.dumps([before, loaded()]))
finally:
    pool.close()
    state.close()
"""


def test_after_the_warm_up_a_granular_audio_process_loads_no_compiled_kernel():
    done = subprocess.run([sys.executable, "-c", GRANULAR_SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before["engine.audio.rack_block.granulator_callback"] == 1
    assert after == before, "first used in the show, after the warm-up"
