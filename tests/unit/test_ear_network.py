"""The ear's network (scenes/ear/network.py; issue 22): the scaleogram puts a tone in the bin the
design names, its polyphase form equals the straightforward strided convolution, nothing in the
network hears the future; input optimisation raises its target; the layout's energy falls and its
cache reloads bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scenes.ear import dream, layout, network
from scenes.ear.learner import load_ear
from tests.conftest import ROOT

CHECKPOINT = ROOT / "build" / "ear.ckpt"


def tone(frequency: float, seconds_frames: int = network.CLIP_FRAMES, amplitude: float = 0.5) -> np.ndarray:
    n = np.arange(seconds_frames * network.HOP)
    return (amplitude * np.sin(2 * np.pi * frequency * n / network.RATE)).astype(np.float32)


@pytest.mark.parametrize("note", [33, 57, 69, 93])
def test_a_tone_peaks_in_its_notes_bin(note):
    frequency = 440.0 * 2 ** ((note - 69) / 12)
    spectrum = np.asarray(jax.jit(network.scaleogram)(jnp.asarray(tone(frequency))[None]))[0]
    steady = spectrum[120]  # 2.8 s in: past the longest kernel (0.4 s)
    assert int(np.argmax(steady)) == network.note_bin(note) == note - network.LOWEST_NOTE
    assert steady.max() > 0.5  # a loud tone
    assert np.median(steady) < steady.max() - 0.5  # and a peak, not a flat spectrum


def test_polyphase_and_straightforward_scaleograms_agree():
    rng = np.random.default_rng(1)
    signal = jnp.asarray(rng.uniform(-0.5, 0.5, (2, 64 * network.HOP)).astype(np.float32))
    poly = network.scaleogram(signal)
    direct = network.scaleogram_direct(signal)
    numpy = network.scaleogram_numpy(np.asarray(signal[0]))
    assert poly.shape == (2, 64, network.BINS)
    assert float(jnp.max(jnp.abs(poly - direct))) < 1e-5
    assert np.max(np.abs(np.asarray(poly[0]) - numpy)) < 1e-4


def test_polyphase_strided_layers_equal_the_straightforward_ones():
    params = network.init_params(jax.random.PRNGKey(3))
    spectrum = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (2, network.CLIP_FRAMES, network.BINS)),
                           jnp.float32)
    poly = network.forward(params, spectrum)
    direct = network.forward(params, spectrum, conv=network.conv2d_direct)
    for name in network.LAYERS:
        assert poly[name].shape == direct[name].shape
        assert float(jnp.max(jnp.abs(poly[name] - direct[name]))) < 1e-4, name


def test_nothing_hears_the_future():
    """Changing the input from sample t on changes no scaleogram frame and no activation before t."""
    params = network.init_params(jax.random.PRNGKey(0))
    rng = np.random.default_rng(5)
    clip = rng.uniform(-0.5, 0.5, network.CLIP).astype(np.float32)
    changed = clip.copy()
    cut_frame = 96  # a multiple of 4 frames: code 24 starts here
    changed[cut_frame * network.HOP:] = rng.uniform(-0.5, 0.5, network.CLIP - cut_frame * network.HOP)

    def layers(x):
        spectrum = network.scaleogram(jnp.asarray(x)[None])
        return spectrum, network.forward(params, spectrum)

    (s1, a), (s2, b) = layers(clip), layers(changed)
    np.testing.assert_array_equal(np.asarray(s1[0, :cut_frame]), np.asarray(s2[0, :cut_frame]))
    assert not np.array_equal(np.asarray(s1[0, cut_frame:]), np.asarray(s2[0, cut_frame:]))
    for name in network.LAYERS:
        frames = a[name].shape[1]
        before = cut_frame * frames // network.CLIP_FRAMES
        np.testing.assert_array_equal(np.asarray(a[name][0, :before]), np.asarray(b[name][0, :before]),
                                      err_msg=name)
        assert not np.array_equal(np.asarray(a[name][0, before:]), np.asarray(b[name][0, before:])), name


@pytest.mark.parametrize("target", [dream.Target(), dream.Target(layer="e3", channels=(0.0, 0.02), bins=(0.25, 0.5)),
                                    dream.Target(layer="e1", channels=(0.1, 0.15), bins=(0.2, 0.3))], ids=["e2", "e3", "e1"])
def test_input_optimisation_raises_its_target_from_near_silence(target):
    """The regularised, normalised-gradient ascent of scenes/ear/dream.py on the ear `make setup`
    trained: a group's normalised activation 3x in 10 steps, 5x in 50; loops finite, within -1..1."""
    state = load_ear(CHECKPOINT)
    params, mean, var = state.params, state.mean, state.var
    reg = dream.Regularisers()
    dreamer = dream.Dreamer()
    clip = jnp.asarray(dream.start_material("silence", network.CLIP, seed=0))
    start = dreamer.value(params, mean, var, clip, target)
    key = jax.random.PRNGKey(0)
    values = {}
    for step in range(1, 51):
        key, sub = jax.random.split(key)
        clip, _ = dreamer.step(params, mean, var, clip, sub, target, reg)
        if step in (10, 50):
            values[step] = dreamer.value(params, mean, var, clip, target)
    loop = np.asarray(clip)
    assert np.isfinite(loop).all() and np.abs(loop).max() <= 1.0
    assert values[10] >= 3 * start, (start, values)
    assert values[50] >= 5 * start, (start, values)


def test_a_seamless_loop_meets_itself():
    clip = np.linspace(-0.5, 0.5, 4000).astype(np.float32)
    loop = dream.seamless(clip)
    assert abs(loop[-1] - loop[0]) < 1e-6
    np.testing.assert_array_equal(loop[:3000], clip[:3000])


def test_the_loss_distorts_a_loop_by_soft_clipping_it():
    clip = (0.5 * np.sin(np.linspace(0, 40 * np.pi, 4000))).astype(np.float32)
    for amount in (0.0, -1.0, float("nan")):
        assert dream.distorted(clip, amount) is clip  # no drive: the loop as it is
    assert np.allclose(dream.distorted(clip, 1e-3), clip, atol=1e-4)  # it tends to that
    shaped = dream.distorted(clip, 3.0)
    assert shaped.dtype == np.float32 and np.all(np.abs(shaped) <= 1.0)
    assert np.abs(shaped).max() > 0.9 > 0.5 >= np.abs(clip).max()  # pushed up, towards a square
    assert np.array_equal(np.sign(shaped), np.sign(clip))
    assert dream.distorted(np.float32([1.0, -1.0]), 1e9).tolist() == [1.0, -1.0]  # peaks held at +-1


def test_the_layout_energy_falls_and_its_cache_reloads_bit_for_bit(tmp_path):
    graph = layout.neuron_graph()
    assert len(graph) == sum(b * c for b, c in network.layer_shapes().values())
    var = {k: np.random.default_rng(0).uniform(0.5, 2.0, s) for k, s in network.layer_shapes().items()}
    q = layout.charges(graph, var)
    record: list = []
    positions = layout.lay_out(graph, q, record=record, iterations=100)
    for _factor, energies in record:
        assert energies[-1] < energies[0]
    assert positions.shape == (len(graph), 2) and np.isfinite(positions).all()
    assert np.abs(positions).max() <= 1.0 + 1e-6
    checkpoint = tmp_path / "ear.ckpt"
    checkpoint.write_bytes(b"a checkpoint's bytes")
    first = layout.cached_layout(checkpoint, graph, q)
    assert (tmp_path / "ear.ckpt.layout.npz").exists()
    again = layout.cached_layout(checkpoint, graph, q)
    np.testing.assert_array_equal(first, again)
    checkpoint.write_bytes(b"another checkpoint")  # another model: laid out again
    third = layout.cached_layout(checkpoint, graph, q)
    assert third.shape == first.shape
    cache = tmp_path / "ear.ckpt.layout.npz"
    cache.write_bytes(cache.read_bytes()[:1000])  # cut short (a full disk, a copy stopped): laid out again
    np.testing.assert_array_equal(layout.cached_layout(checkpoint, graph, q), third)
    np.testing.assert_array_equal(layout.cached_layout(checkpoint, graph, q), third)  # and cached again
