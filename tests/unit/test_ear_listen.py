"""The ear listening incrementally (scenes/ear/listen.py; issue 22): fed in chunks of any size,
every layer's newest step and the scaleogram equal the jax network over the whole sound; the
sound resampled from the show's rate on a fixed grid is the same however it arrives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from scenes.ear import dream, network
from scenes.ear.listen import Listener, resampling_weights


def model(seed: int = 3):
    params = network.init_params(jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed)
    params = {k: (v + 0.05 * rng.standard_normal(v.shape).astype(np.float32)) if k.endswith("_b") else v
              for k, v in params.items()}  # non-zero biases, so a wrong one shows
    shapes = network.layer_shapes()
    mean = {n: jnp.asarray(rng.normal(0, 0.1, shapes[n]), jnp.float32) for n in network.LAYERS}
    var = {n: jnp.asarray(rng.uniform(0.5, 2.0, shapes[n]), jnp.float32) for n in network.LAYERS}
    return params, mean, var


def test_fed_in_any_chunks_every_layer_equals_the_network_over_the_whole_sound():
    params, mean, var = m = model()
    rng = np.random.default_rng(7)
    frames = 230  # past the 172 drawn: the scaleogram rolls
    t = np.arange(frames * network.HOP) / network.RATE
    signal = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.5 * t)) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    spectrum = network.scaleogram(jnp.asarray(signal)[None])
    layers = {k: np.asarray(v[0]) for k, v in network.forward(params, spectrum).items()}
    listener = Listener(network.RATE)
    listener.hear(m, np.zeros(0, np.float32), 0)  # takes the model
    at, checked = 0, 0
    while at < len(signal):
        size = int(rng.integers(1, 3 * network.HOP))
        listener.add_ear(signal[at:at + size])
        at += size
        for name in network.LAYERS:
            steps = listener.steps[name]
            assert steps == min(at // network.HOP // network.time_stride(name), layers[name].shape[0]), name
            if steps:
                np.testing.assert_allclose(listener.newest[name], layers[name][steps - 1], atol=2e-4, rtol=1e-4,
                                           err_msg=name)
                checked += 1
    assert listener.frames == frames and checked > 1000
    np.testing.assert_allclose(listener.spectrum, np.asarray(spectrum[0, -network.CLIP_FRAMES:]), atol=1e-4)
    # lit: each neuron's normalised activation at its layer's newest step, in the graph's order
    expected = np.concatenate([np.maximum((layers[n][-1] - np.asarray(mean[n]))
                                          / np.sqrt(np.maximum(np.asarray(var[n]), dream.STD_FLOOR ** 2)), 0).ravel()
                               for n in network.LAYERS])
    np.testing.assert_allclose(listener.lit(), expected, atol=1e-3)


def test_the_shows_sound_resamples_to_the_ears_rate_on_one_grid_however_it_arrives():
    rate = 48000
    up, down, weights = resampling_weights(rate)
    assert (up, down) == (147, 320)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=0.02)  # a low-pass: DC passes
    seconds = 1.0
    n = np.arange(int(rate * seconds))
    show = (0.5 * np.sin(2 * np.pi * 1000.0 * n / rate)).astype(np.float32)
    whole, chunked = Listener(rate), Listener(rate)
    for listener in (whole, chunked):
        listener.hear(model(), np.zeros(0, np.float32), 0)
    ring = 20000  # the show's ring holds its last samples only
    whole.add(show[-ring:], len(show))  # the oldest beyond the ring: silence
    made = []
    rng = np.random.default_rng(0)
    at = 0
    while at < len(show):
        at = min(len(show), at + int(rng.integers(100, 3000)))
        before = chunked.sound_at
        chunked.add(show[max(0, at - ring):at], at)
        made.append(chunked.sound[len(chunked.sound) - (chunked.sound_at - before):])
    ear = np.concatenate(made)
    assert whole.sound_at == chunked.sound_at == len(ear)
    tail = whole.sound[-5000:]
    np.testing.assert_allclose(ear[-5000:], tail, atol=1e-6)
    # a 1 kHz sine at 48 kHz is a 1 kHz sine at 22,050 Hz, at the same times
    k = np.arange(len(ear) - 5000, len(ear))
    expected = 0.5 * np.sin(2 * np.pi * 1000.0 * k / network.RATE)
    assert np.max(np.abs(ear[-5000:] - expected)) < 0.02
