"""What is plugged in: MIDI inputs, audio devices and cameras (``showrunner devices``)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from engine.midi_port import quiet_c_stderr, input_port_names


def midi_inputs() -> dict[str, list[str]]:
    """MIDI source ports per API ("alsa", "jack"); an API with no server is left out."""
    return input_port_names("auto")


def audio_devices() -> list[dict]:
    """PortAudio devices as dicts (name, host API, input and output channel counts, default rate)."""
    try:
        with quiet_c_stderr():
            import pyaudio

            pa = pyaudio.PyAudio()
    except Exception:
        return []
    try:
        found = []
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            found.append({
                "index": index, "name": info["name"],
                "host_api": pa.get_host_api_info_by_index(info["hostApi"])["name"],
                "inputs": int(info["maxInputChannels"]), "outputs": int(info["maxOutputChannels"]),
                "rate": int(info["defaultSampleRate"])})
        return found
    finally:
        with quiet_c_stderr():
            pa.terminate()


def cameras() -> list[tuple[str, str]]:
    """Video capture devices as (device path, name) from video4linux."""
    found = []
    for device in sorted(glob.glob("/dev/video*")):
        name_file = Path("/sys/class/video4linux") / os.path.basename(device) / "name"
        try:
            name = name_file.read_text().strip()
        except OSError:
            name = "?"
        found.append((device, name))
    return found
