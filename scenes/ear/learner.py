"""The ear as a learner (engine.learners.protocol): its state, its step (a batch of 4-s clips, the
InfoNCE loss, an optax adam update) and its summary (loss, prediction accuracy on the batch and on
held-out clips, gradient norm).

The state also keeps every drawn neuron's activation statistics (running mean and variance of its
pre-activation over the clips it trained on): the picture lights a neuron by its activation
normalised by them, and input optimisation raises normalised activations (a neuron behind a ReLU
that never fires would otherwise give no gradient). A checkpoint therefore carries them.

The scaleograms of the sources are the learner's data table, baked into its compiled code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from engine.learners.protocol import Learner
from scenes.ear import network
from scenes.ear.data import Spectra


@dataclass(frozen=True)
class EarConfig:
    """Attributes:
        batch: 4-s clips per step (8: about 320 candidates per prediction).
        learning_rate: adam's step size.
        held_out_batch: held-out clips measured each step (the summary's held-out accuracy is a
            running mean of these measures).
        momentum: of the neurons' running activation statistics.
    """

    batch: int = 8
    learning_rate: float = 1e-3
    held_out_batch: int = 8
    momentum: float = 0.98


class EarState(NamedTuple):
    params: network.Params
    opt_state: Any
    key: jax.Array
    steps: jax.Array
    loss: jax.Array
    accuracy: jax.Array
    held_out_accuracy: jax.Array  # running mean (see EarConfig.held_out_batch)
    grad_norm: jax.Array
    mean: dict[str, jax.Array]  # layer -> (bins, channels): running mean of the pre-activation
    var: dict[str, jax.Array]  # and its variance


class EarCpc(Learner[EarState]):
    name = "ear"
    version = 1
    fused_steps = False  # convolutions: one compiled step a call (see Learner.fused_steps)

    def __init__(self, spectra: Spectra, config: EarConfig | None = None) -> None:
        self.config = config or EarConfig()
        self.spectra = spectra
        self.frames = jnp.asarray(spectra.frames)
        self.train_starts = jnp.asarray(spectra.train_starts)
        self.held_out_starts = jnp.asarray(spectra.held_out_starts)
        self.optimizer = optax.adam(self.config.learning_rate)

    def init(self, seed: jax.Array) -> EarState:
        params_key, key = jax.random.split(jax.random.PRNGKey(seed))
        params = network.init_params(params_key)
        zero = jnp.zeros((), jnp.float32)
        shapes = network.layer_shapes()
        return EarState(params=params, opt_state=self.optimizer.init(params), key=key,
                        steps=jnp.zeros((), jnp.int32), loss=zero, accuracy=zero, held_out_accuracy=zero,
                        grad_norm=zero, mean={n: jnp.zeros(s, jnp.float32) for n, s in shapes.items()},
                        var={n: jnp.ones(s, jnp.float32) for n, s in shapes.items()})

    def clips(self, starts: jax.Array) -> jax.Array:
        """(B,) start frames -> (B, 172, 96) scaleogram clips."""
        index = starts[:, None] + jnp.arange(network.CLIP_FRAMES)[None, :]
        return self.frames[index]

    def accuracy_of(self, params: network.Params, starts: jax.Array) -> jax.Array:
        return network.info_nce(params, self.clips(starts))[1][0]

    def step(self, state: EarState) -> EarState:
        c = self.config
        key, pick, held_pick = jax.random.split(state.key, 3)
        starts = self.train_starts[jax.random.randint(pick, (c.batch,), 0, self.train_starts.shape[0])]
        loss_fn = lambda p: network.info_nce(p, self.clips(starts))  # noqa: E731
        (loss, (accuracy, layers)), grad = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = self.optimizer.update(grad, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        steps = state.steps + 1
        first = steps == 1
        keep = jnp.where(first, 0.0, c.momentum)
        mean, var = {}, {}
        for name, pre in layers.items():
            pre = jax.lax.stop_gradient(pre)
            batch_mean = jnp.mean(pre, axis=(0, 1))
            batch_var = jnp.var(pre, axis=(0, 1))
            mean[name] = keep * state.mean[name] + (1 - keep) * batch_mean
            var[name] = keep * state.var[name] + (1 - keep) * batch_var
        held = self.held_out_starts[jax.random.randint(held_pick, (c.held_out_batch,), 0,
                                                        self.held_out_starts.shape[0])]
        measured = self.accuracy_of(params, held)
        weight = jnp.maximum(0.05, 1.0 / steps.astype(jnp.float32))  # a mean of the last ~20
        held_accuracy = (1 - weight) * state.held_out_accuracy + weight * measured
        return state._replace(params=params, opt_state=opt_state, key=key, steps=steps, loss=loss,
                              accuracy=accuracy, held_out_accuracy=held_accuracy,
                              grad_norm=optax.tree.norm(grad), mean=mean, var=var)

    @classmethod
    def for_playing(cls) -> EarCpc:
        """An ear with no data of its own: for loading a checkpoint to listen and dream with (its
        :meth:`step` would learn silence)."""
        silence = np.full((2 * network.CLIP_FRAMES, network.BINS), -1.0, np.float32)
        starts = np.zeros(1, np.int32)
        return cls(Spectra(silence, starts, starts, ("silence",), 0.0))

    def summary(self, state: EarState) -> dict[str, jax.Array]:
        return {"loss": state.loss, "accuracy": state.accuracy, "held_out_accuracy": state.held_out_accuracy,
                "grad_norm": state.grad_norm, "steps": state.steps}

    def describe(self) -> dict[str, Any]:
        return asdict(self.config)


def load_ear(path) -> EarState:
    """A checkpoint of the ear (``showrunner train ear``) for listening and dreaming; UserError (one
    line) for a missing or damaged file (engine.learners.checkpoint)."""
    from engine.learners import checkpoint

    return checkpoint.load(path, EarCpc.for_playing())
