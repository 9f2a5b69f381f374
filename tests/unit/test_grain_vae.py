"""The grain VAE (scenes/granolar, issue 21): its polyphase layers against straightforward
convolutions, the lengths, the KL term against the closed form and a Monte Carlo estimate, the
grains it learns from, a trainer that calls one step at a time, checkpoints and the train command."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile

from engine.errors import UserError
from scenes.granolar import vae
from scenes.granolar.data import HOP, cut_grains, load_grains
from tests.conftest import SHARED_DATA, showrunner_command

RATE = 48000


@pytest.fixture(scope="module")
def params():
    return vae.init_params(jax.random.PRNGKey(3))


def test_the_network_maps_512_samples_to_16_latent_dimensions_and_back(params):
    grains = jnp.zeros((3, vae.GRAIN))
    mean, log_var, _ = vae.encode(params, grains)
    assert mean.shape == log_var.shape == (3, vae.LATENT)
    decoded, _ = vae.decode(params, mean)
    assert decoded.shape == (3, vae.GRAIN)
    # The report's layer table: 4 convolutions each way; about 45,000 parameters.
    assert 44_000 < sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)) < 46_000


@pytest.mark.parametrize("stride, kernel, left, right, length", [
    (2, 8, 3, 3, 512), (4, 10, 4, 4, 256), (4, 13, 6, 6, 64), (3, 7, 0, 5, 50), (1, 5, 2, 2, 40)])
def test_a_polyphase_strided_convolution_equals_the_strided_one(stride, kernel, left, right, length):
    keys = jax.random.split(jax.random.PRNGKey(stride * kernel), 2)
    x = jax.random.normal(keys[0], (2, length, 3))
    w = jax.random.normal(keys[1], (kernel, 3, 5))
    ours = vae.strided_conv(x, w, stride, left, right)
    direct = vae.direct_strided_conv(x, w, stride, left, right)
    assert ours.shape == direct.shape
    np.testing.assert_allclose(ours, direct, atol=1e-5)


@pytest.mark.parametrize("stride, kernel, crop_left, crop_right, length", [
    (4, 13, 5, 4, 16), (4, 10, 3, 3, 64), (2, 8, 3, 3, 256), (1, 5, 2, 2, 100), (3, 7, 0, 2, 11)])
def test_a_polyphase_transposed_convolution_equals_the_dilated_one(stride, kernel, crop_left,
                                                                    crop_right, length):
    keys = jax.random.split(jax.random.PRNGKey(stride + kernel), 2)
    x = jax.random.normal(keys[0], (2, length, 4))
    w = jax.random.normal(keys[1], (kernel, 4, 3))
    ours = vae.transposed_conv(x, w, stride, crop_left, crop_right)
    direct = vae.direct_transposed_conv(x, w, stride, crop_left, crop_right)
    assert ours.shape == direct.shape == (2, (length - 1) * stride + kernel - crop_left - crop_right, 3)
    np.testing.assert_allclose(ours, direct, atol=1e-5)
    # and against the definition: y[n] = sum_i x[i] w[n + crop_left - s i]
    x0, w0 = np.asarray(x[0, :, 0]), np.asarray(w[:, 0, 0])
    y = np.zeros((length - 1) * stride + kernel)
    for i in range(length):
        y[i * stride:i * stride + kernel] += x0[i] * w0
    expected = y[crop_left:len(y) - crop_right]
    single = vae.transposed_conv(x[:1, :, :1], w[:, :1, :1], stride, crop_left, crop_right)
    np.testing.assert_allclose(single[0, :, 0], expected, atol=1e-4)


def test_the_polyphase_network_and_its_gradient_equal_the_straightforward_ones(params):
    grains = 0.3 * jax.random.normal(jax.random.PRNGKey(1), (8, vae.GRAIN))
    key = jax.random.PRNGKey(2)
    mean, log_var, _ = vae.encode(params, grains)
    mean_d, log_var_d, _ = vae.encode_direct(params, grains)
    np.testing.assert_allclose(mean, mean_d, atol=1e-5)
    np.testing.assert_allclose(log_var, log_var_d, atol=1e-5)
    np.testing.assert_allclose(vae.decode(params, mean)[0], vae.decode_direct(params, mean)[0], atol=1e-5)

    def loss(encoder, decoder):
        return jax.grad(lambda p: vae.negative_elbo(p, grains, key, 0.5, encoder, decoder)[0])(params)

    ours, direct = loss(vae.encode, vae.decode), loss(vae.encode_direct, vae.decode_direct)
    # Relative to the largest gradient: a bias followed by batch norm has a gradient of 0 in exact
    # arithmetic, rounding noise in both versions.
    scale = max(float(jnp.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(direct))
    for name in params:
        np.testing.assert_allclose(ours[name] / scale, direct[name] / scale, atol=1e-5, err_msg=name)


def test_the_numpy_decoder_that_plays_equals_the_network_s_with_running_statistics(params):
    """decode_numpy (live decoding outside XLA's pool) against decode with running statistics,
    both made non-trivial (means, variances, shifts and biases away from their initial values)."""
    rng = np.random.default_rng(5)
    stats = {k: np.asarray(v) + (0.3 * rng.standard_normal(v.shape) if k.endswith("_mean")
                                 else rng.uniform(0.5, 2.0, v.shape)) for k, v in vae.init_statistics().items()}
    params = {k: np.asarray(v) + (0.1 * rng.standard_normal(v.shape) if not k.endswith("_w") else 0)
              for k, v in params.items()}
    count = 2 * vae.DECODE_CHUNK + 3  # whole chunks and a part of one
    z = rng.standard_normal((count, vae.LATENT)).astype(np.float32)
    expected = np.asarray(vae.decode({k: jnp.asarray(v, jnp.float32) for k, v in params.items()}, z,
                                     {k: jnp.asarray(v, jnp.float32) for k, v in stats.items()})[0])
    played = vae.decode_numpy(params, z, stats)
    assert played.shape == (count, vae.GRAIN) and played.dtype == np.float32
    assert np.abs(expected).max() > 0.05
    np.testing.assert_allclose(played, expected, atol=1e-5)
    # Weights prepared once, and chunks decoded side by side on threads (live): the same bits.
    with ThreadPoolExecutor(2) as pool:
        spread = vae.decode_numpy(None, z, prepared=vae.prepare_decoder(params, stats), map_chunks=pool.map)
    np.testing.assert_array_equal(spread, played)


def test_the_kl_term_is_the_closed_form_and_agrees_with_a_monte_carlo_estimate(params):
    rng = np.random.default_rng(4)
    mean = rng.normal(size=(3, vae.LATENT)).astype(np.float32)
    log_var = rng.normal(scale=0.5, size=(3, vae.LATENT)).astype(np.float32)
    kl = np.asarray(vae.kl_divergence(jnp.asarray(mean), jnp.asarray(log_var)))
    # per dimension, KL(N(m, v) || N(0, 1)) = (v + m^2 - 1 - ln v) / 2
    closed = 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, axis=1)
    np.testing.assert_allclose(kl, closed, rtol=1e-5)
    # E_q[ln q(z) - ln p(z)] sampled
    z = mean[0] + np.exp(0.5 * log_var[0]) * rng.normal(size=(400_000, vae.LATENT))
    log_q = -0.5 * (((z - mean[0]) ** 2) / np.exp(log_var[0]) + log_var[0] + np.log(2 * np.pi))
    log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
    assert kl[0] == pytest.approx(np.mean(np.sum(log_q - log_p, axis=1)), rel=0.02)
    # and the ELBO's KL term is it, averaged over the batch
    grains = 0.2 * jax.random.normal(jax.random.PRNGKey(5), (4, vae.GRAIN))
    loss, (reconstruction, term, _) = vae.negative_elbo(params, grains, jax.random.PRNGKey(6), 0.25)
    m, s, _ = vae.encode(params, grains)
    assert float(term) == pytest.approx(float(jnp.mean(vae.kl_divergence(m, s))), rel=1e-5)
    assert float(loss) == pytest.approx(float(reconstruction) + 0.25 * float(term), rel=1e-5)


def test_grains_are_cut_every_256_samples_and_the_quiet_ones_dropped():
    sound = np.zeros(RATE, np.float32)
    sound[:RATE // 2] = 0.5 * np.sin(np.arange(RATE // 2) * 0.05)
    grains = cut_grains(sound)
    loud = (RATE // 2 - vae.GRAIN) // HOP + 1  # grains wholly in the loud half
    assert loud <= len(grains) <= loud + 2  # the two straddling its end keep enough level
    np.testing.assert_array_equal(grains[1], sound[HOP:HOP + vae.GRAIN])
    assert cut_grains(np.zeros(100, np.float32)).shape == (0, vae.GRAIN)


def test_one_grain_in_ten_is_held_out_the_same_way_every_time(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, 0.3 * np.sin(np.arange(RATE) * 0.03), RATE)
    first, again = load_grains([path], RATE, seed=1), load_grains([path], RATE, seed=1)
    total = len(first.train) + len(first.held_out)
    assert len(first.held_out) == round(0.1 * total)
    np.testing.assert_array_equal(first.held_out, again.held_out)
    other = load_grains([path], RATE, seed=2)
    assert not np.array_equal(first.held_out, other.held_out)


def test_a_silent_or_too_short_recording_is_a_one_line_error(tmp_path):
    soundfile.write(tmp_path / "silent.wav", np.zeros(RATE), RATE)
    soundfile.write(tmp_path / "short.wav", 0.5 * np.ones(300), RATE)
    for name in ("silent.wav", "short.wav"):
        with pytest.raises(UserError, match=rf"{name}: no grain to learn from \(silent, or shorter "
                                            rf"than 512 samples at 48000 Hz\)$"):
            load_grains([tmp_path / name], RATE)


def test_a_trainer_stepping_one_call_at_a_time_trains_as_the_fused_one():
    """fused_steps = False (the VAE's: convolutions are slow inside XLA:CPU loops): the same
    states, step for step, as the fused loop's."""
    from engine.learners.regressor import Regressor, RegressorConfig
    from engine.learners.trainer import Trainer

    class OneAtATime(Regressor):
        fused_steps = False

    config = RegressorConfig(image_size=8, channels=4, layers=2, batch=4)
    states = []
    for learner in (Regressor(config), OneAtATime(config)):
        trainer = Trainer(learner, seed=5, paced_steps_per_tick=3)
        trainer.load()
        for tick in range(4):
            trainer.tick(tick / 60)
        states.append(trainer.latest)
    assert states[0].steps == states[1].steps == 12
    for fused, single in zip(jax.tree_util.tree_leaves(states[0].state),
                             jax.tree_util.tree_leaves(states[1].state)):
        np.testing.assert_allclose(np.asarray(fused), np.asarray(single), rtol=1e-5, atol=1e-6)
    assert states[0].summary["loss"] == pytest.approx(states[1].summary["loss"], rel=1e-5)


def test_train_vae_saves_a_checkpoint_that_resumes_and_a_corrupt_one_is_one_line(tmp_path):
    recording = tmp_path / "voice.wav"
    voice = soundfile.read(SHARED_DATA / "audio" / "smstools_singing-female.wav")[0][:44100]
    soundfile.write(recording, voice, 44100)
    out = tmp_path / "vae.ckpt"
    done = subprocess.run(showrunner_command("train", "vae", str(recording), "--out", str(out),
                                             "--steps", "6", "--save-every", "4"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "6 steps in" in done.stderr and out.is_file()
    again = subprocess.run(showrunner_command("train", "vae", str(recording), "--out", str(out),
                                              "--steps", "2", "--resume", str(out)),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    from engine.learners import checkpoint
    from scenes.granolar.learner import GrainVae

    state = checkpoint.load(out, GrainVae(load_grains([recording], RATE)))
    assert int(state.steps) == 8  # 6, then 2 more from the checkpoint
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(out.read_bytes()[:2000])
    bad = subprocess.run(showrunner_command("train", "vae", str(recording), "--out", str(tmp_path / "x.ckpt"),
                                            "--steps", "1", "--resume", str(corrupt)),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "corrupt.ckpt" in bad.stderr and "Traceback" not in bad.stderr


def test_grains_heard_live_fill_a_ring_that_a_share_of_each_minibatch_is_drawn_from():
    from scenes.granolar.data import grain_set
    from scenes.granolar.learner import FEED, LIVE_CAPACITY, GrainVae, VaeConfig

    quiet = 0.05 * np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    learner = GrainVae(grain_set({"quiet": quiet}, RATE), VaeConfig(live_share=1.0))
    absorb = jax.jit(learner.absorb)
    state = learner.init(np.uint32(0))
    grains = np.zeros((FEED, vae.GRAIN), np.float32)
    grains[:3] = np.arange(1, 4)[:, None] / 10
    state = absorb(state, {"grains": grains, "count": np.int32(3)})
    assert int(state.live_count) == 3 and int(state.live_next) == 3
    np.testing.assert_array_equal(np.asarray(state.live[:4, 0]), np.float32([0.1, 0.2, 0.3, 0.0]))
    # the newest replace the oldest past the capacity
    state = state._replace(live_next=jnp.int32(LIVE_CAPACITY - 2), live_count=jnp.int32(LIVE_CAPACITY - 1))
    grains[:5] = 0.9
    state = absorb(state, {"grains": grains, "count": np.int32(5)})
    assert int(state.live_count) == LIVE_CAPACITY and int(state.live_next) == 3
    live = np.asarray(state.live[:, 0])
    assert (live[-2:] == 0.9).all() and (live[:3] == 0.9).all() and live[3] == 0.0
    # live_share 1: a step learns the grains heard once there are any (two different heard grains,
    # two different errors), the recording's before (what the empty ring holds plays no part)
    step = jax.jit(learner.step)
    fresh = learner.init(np.uint32(0))

    def reconstruction(level, count):
        return float(step(fresh._replace(live=fresh.live.at[0].set(level), live_count=jnp.int32(count))).reconstruction)

    assert reconstruction(0.9, 0) == reconstruction(-0.5, 0)
    assert reconstruction(0.9, 1) != reconstruction(-0.5, 1)


def test_train_vae_with_one_grain_or_an_unwritable_checkpoint_is_one_line_before_any_step(tmp_path):
    tiny = tmp_path / "tiny.wav"  # 600 samples: one grain of 512, held out
    soundfile.write(tiny, 0.5 * np.sin(np.arange(600) * 0.05), RATE)
    voice = tmp_path / "voice.wav"
    soundfile.write(voice, soundfile.read(SHARED_DATA / "audio" / "smstools_singing-female.wav")[0][:44100], 44100)
    for recording, out, message in ((tiny, tmp_path / "x.ckpt", "one grain to learn from"),
                                    (voice, Path("/proc/nowhere/x.ckpt"), "cannot write checkpoint")):
        bad = subprocess.run(showrunner_command("train", "vae", str(recording), "--out", str(out), "--steps", "3"),
                             capture_output=True, text=True, timeout=300)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
        assert "0 steps" not in bad.stderr and "steps in" not in bad.stderr
