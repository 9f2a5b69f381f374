"""The audio kernels' numba cache goes stale when any audio source changes (engine.audio.kernel_cache)."""

from __future__ import annotations

import shutil

from engine.audio import kernel_cache, rack_block, shared
from scenes.ldd.sound import kernels as overtone_kernels


def test_the_audio_kernels_are_stamped_with_every_audio_sources_digest() -> None:
    """numba compares a cached kernel's stamp with its locator's: the one-call block (which
    inlines the shared memory's layout from shared.py) carries the digest of every file."""
    for kernel in (rack_block.granulator_callback, shared.finish_block):
        locator = kernel._cache._impl.locator
        assert isinstance(locator, (kernel_cache.InTreeLocator, kernel_cache.UserWideLocator,
                                    kernel_cache.UserProvidedLocator))
        assert locator.get_source_stamp() == ("showrunner-audio", kernel_cache.digest())
    # Another package's kernels keep numba's own locator.
    assert not isinstance(overtone_kernels.overtone_block._cache._impl.locator, kernel_cache._Stamped)


def test_the_digest_changes_with_any_file(tmp_path, monkeypatch) -> None:
    for path in kernel_cache.FOLDER.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(kernel_cache, "FOLDER", tmp_path)
    before = kernel_cache.digest()
    assert kernel_cache.digest() == before
    shared_py = tmp_path / "shared.py"
    shared_py.write_text(shared_py.read_text() + "\n# a change\n")
    assert kernel_cache.digest() != before
