"""A small conv net that learns to regress a hidden function of images: the demonstration learner.

Its step (a minibatch of synthetic images, forward, backward, an optax adam update) costs about
50 ms on two CPU cores at the defaults, far too long for a 60 Hz tick (16.7 ms): it is what the
background :class:`~engine.learners.trainer.Trainer` is for, and what its tests train.

The network is plain jax functions on a parameter pytree (a dict of arrays), no framework:

    image (B, S, S, 1) -> [conv 3x3, ``channels``, relu] x ``layers`` -> mean over pixels
                       -> dense (channels -> 1)

The data come from the state's own key, a fresh minibatch every step: images of uniform noise
smoothed by a fixed 3x3 box; the target of an image is a fixed hidden function of it (a random
"teacher" filter's response, squashed by tanh and averaged), so the loss can fall but never needs a
data set. Everything is float32 unless the config asks for float64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from engine.learners.precision import Precision, float_dtype
from engine.learners.protocol import Learner

Params = dict[str, jax.Array]


@dataclass(frozen=True)
class RegressorConfig:
    """Sizes and optimizer of the regressor (the defaults: about 50 ms a step on two cores).

    Attributes:
        image_size: images are ``image_size`` x ``image_size`` pixels, one channel.
        channels: feature maps of every conv layer.
        layers: conv layers (3x3, same padding, relu).
        batch: images per step.
        learning_rate: adam's step size.
        precision: "float32" or "float64".
    """

    image_size: int = 16
    channels: int = 16
    layers: int = 3
    batch: int = 24
    learning_rate: float = 1e-3
    precision: Precision = "float32"


class TrainState(NamedTuple):
    """Everything that changes while the regressor trains (one pytree).

    Attributes:
        params: the network's weights (a dict: ``conv0``, ``bias0``, ..., ``dense``, ``dense_bias``).
        opt_state: adam's moments and count (optax).
        key: raw threefry key (2,) uint32 of the next minibatch.
        steps: updates so far (int32).
        loss: mean squared error of the last step's minibatch, before its update.
        grad_norm: global L2 norm of that step's gradient.
    """

    params: Params
    opt_state: Any
    key: jax.Array
    steps: jax.Array
    loss: jax.Array
    grad_norm: jax.Array


def _conv(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    out = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out + bias


def predict(params: Params, images: jax.Array) -> jax.Array:
    """The network: (B, S, S, 1) images -> (B,) predictions."""
    x = images
    layer = 0
    while f"conv{layer}" in params:
        x = jax.nn.relu(_conv(x, params[f"conv{layer}"], params[f"bias{layer}"]))
        layer += 1
    return jnp.mean(x, axis=(1, 2)) @ params["dense"] + params["dense_bias"]


class Regressor(Learner[TrainState]):
    """The conv net regressor as a :class:`~engine.learners.protocol.Learner` (optax adam)."""

    name = "regressor"
    version = 1

    def __init__(self, config: RegressorConfig | None = None) -> None:
        self.config = config or RegressorConfig()
        self.precision = self.config.precision
        self.dtype = float_dtype(self.precision)
        self.optimizer = optax.adam(self.config.learning_rate)
        # The hidden function: fixed for every run (its own seed), so the task never changes.
        teacher = np.random.default_rng(19).normal(size=(3, 3, 1, 4)) / 3
        self.teacher = teacher.astype(self.dtype)

    def recipe(self):  # made again in a training process: its optimizer's closures do not pickle
        return type(self), (self.config,)

    # Data ------------------------------------------------------------------------------------------
    def minibatch(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``batch`` images (B, S, S, 1) and their targets (B,) drawn from ``key``."""
        c = self.config
        noise = jax.random.uniform(key, (c.batch, c.image_size, c.image_size, 1), self.dtype, -1.0, 1.0)
        box = jnp.full((3, 3, 1, 1), 1 / 9, self.dtype)
        images = _conv(noise, box, jnp.zeros((1,), self.dtype))
        response = _conv(images, jnp.asarray(self.teacher), jnp.zeros((4,), self.dtype))
        targets = jnp.mean(jnp.tanh(3 * response), axis=(1, 2, 3))
        return images, targets

    # The protocol ----------------------------------------------------------------------------------
    def init_params(self, key: jax.Array) -> Params:
        """He-initialised conv layers and a zero dense layer."""
        c = self.config
        params: Params = {}
        fan_in = 1
        for layer in range(c.layers):
            key, sub = jax.random.split(key)
            scale = jnp.sqrt(2.0 / (9 * fan_in)).astype(self.dtype)
            params[f"conv{layer}"] = scale * jax.random.normal(sub, (3, 3, fan_in, c.channels), self.dtype)
            params[f"bias{layer}"] = jnp.zeros((c.channels,), self.dtype)
            fan_in = c.channels
        params["dense"] = jnp.zeros((c.channels,), self.dtype)
        params["dense_bias"] = jnp.zeros((), self.dtype)
        return params

    def init(self, seed: jax.Array) -> TrainState:
        params_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
        params = self.init_params(params_key)
        zero = jnp.zeros((), self.dtype)
        return TrainState(params=params, opt_state=self.optimizer.init(params), key=data_key,
                          steps=jnp.zeros((), jnp.int32), loss=zero, grad_norm=zero)

    def loss(self, params: Params, images: jax.Array, targets: jax.Array) -> jax.Array:
        """Mean squared error of the predictions."""
        error = predict(params, images) - targets
        return jnp.mean(error * error)

    def step(self, state: TrainState) -> TrainState:
        key, batch_key = jax.random.split(state.key)
        images, targets = self.minibatch(batch_key)
        loss, grad = jax.value_and_grad(self.loss)(state.params, images, targets)
        updates, opt_state = self.optimizer.update(grad, state.opt_state, state.params)
        return TrainState(params=optax.apply_updates(state.params, updates), opt_state=opt_state, key=key,
                          steps=state.steps + 1, loss=loss, grad_norm=optax.tree.norm(grad))

    def summary(self, state: TrainState) -> dict[str, jax.Array]:
        return {"loss": state.loss, "grad_norm": state.grad_norm, "steps": state.steps}

    def describe(self) -> dict[str, Any]:
        return asdict(self.config)
