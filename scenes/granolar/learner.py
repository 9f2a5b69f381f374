"""The grain VAE as a learner (engine.learners.protocol): its state, its step (a minibatch of
training grains, the negative ELBO, an optax adam update) and its summary (the loss terms, the
gradient norm and, every ``eval_every`` steps, the held-out error).

The recordings' grains are the learner's data tables, baked into its compiled code: a learner is
made for one set of recordings (:func:`scenes.granolar.data.load_grains`). Grains heard as the show
goes (its input or its mix) are fed to it (:meth:`GrainVae.absorb`, ``Trainer.feed``) into a ring
of :data:`LIVE_CAPACITY` grains in its state, the newest replacing the oldest, and a share of every
minibatch (``VaeConfig.live_share``) is drawn from them once there are any. A checkpoint keeps them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from engine.learners.protocol import Learner
from scenes.granolar import vae
from scenes.granolar.data import GrainSet


@dataclass(frozen=True)
class VaeConfig:
    """Attributes:
        batch: grains per step (the report: 62; 16 trains faster per second on two cores).
        learning_rate: adam's step size.
        beta: the KL term's weight (beta-VAE: higher, a smoother latent space, blurrier grains).
        momentum: of the batch norms' running statistics (used when decoding to play).
        held_out_batch: held-out grains measured each step (the summary's held-out error is a
            running mean of these measures, without a second pass over every held-out grain).
        live_share: of each minibatch, the share drawn from the grains heard live (once any are).
    """

    batch: int = 16
    learning_rate: float = 2e-3
    beta: float = 0.5
    momentum: float = 0.9
    held_out_batch: int = 16
    live_share: float = 0.5


LIVE_CAPACITY = 4096  # grains heard as the show goes, kept in the state (about 22 s at 48 kHz)
FEED = 512  # grains in one piece of fed data (fewer are marked by its count)


class VaeState(NamedTuple):
    params: vae.Params
    stats: vae.Params  # the batch norms' running means and variances
    opt_state: Any
    key: jax.Array
    steps: jax.Array
    loss: jax.Array
    reconstruction: jax.Array  # summed squared error per grain, mean over the minibatch
    kl: jax.Array
    grad_norm: jax.Array
    held_out_error: jax.Array  # running mean of the held-out error (see VaeConfig.held_out_batch)
    live: jax.Array  # (LIVE_CAPACITY, 512): grains heard as the show goes, a ring
    live_count: jax.Array  # how many of them are filled
    live_next: jax.Array  # where the next one goes


class GrainVae(Learner[VaeState]):
    name = "grain_vae"
    version = 2
    fused_steps = False  # one compiled step a call: XLA:CPU slows convolutions in a loop 3x
    snapshot_loaded = ("grains", "train", "held_out")  # engine.snapshot: made at load, never changed

    def __init__(self, grains: GrainSet, config: VaeConfig | None = None) -> None:
        self.config = config or VaeConfig()
        self.grains = grains
        self.train = jnp.asarray(grains.train)
        self.held_out = jnp.asarray(grains.held_out)
        self.held_out_power = max(grains.held_out_power, 1e-12)
        self.optimizer = optax.adam(self.config.learning_rate)
        self.feed_example = {"grains": jax.ShapeDtypeStruct((FEED, vae.GRAIN), jnp.float32),
                             "count": jax.ShapeDtypeStruct((), jnp.int32)}

    def recipe(self):  # made again in a training process: its optimizer's closures do not pickle
        return type(self), (self.grains, self.config)

    def init(self, seed: jax.Array) -> VaeState:
        params_key, key = jax.random.split(jax.random.PRNGKey(seed))
        params = vae.init_params(params_key)
        zero = jnp.zeros((), jnp.float32)
        return VaeState(params=params, stats=vae.init_statistics(), opt_state=self.optimizer.init(params),
                        key=key, steps=jnp.zeros((), jnp.int32), loss=zero, reconstruction=zero, kl=zero,
                        grad_norm=zero, held_out_error=jnp.ones((), jnp.float32),
                        live=jnp.zeros((LIVE_CAPACITY, vae.GRAIN), jnp.float32),
                        live_count=jnp.zeros((), jnp.int32), live_next=jnp.zeros((), jnp.int32))

    def absorb(self, state: VaeState, data: dict[str, jax.Array]) -> VaeState:
        """The first ``data["count"]`` of ``data["grains"]`` (FEED, 512) into the live ring."""
        count = jnp.clip(data["count"], 0, FEED)
        index = jnp.arange(FEED)
        where = (state.live_next + index) % LIVE_CAPACITY
        kept = (index < count)[:, None]
        live = state.live.at[where].set(jnp.where(kept, data["grains"], state.live[where]))
        return state._replace(live=live, live_count=jnp.minimum(state.live_count + count, LIVE_CAPACITY),
                              live_next=(state.live_next + count) % LIVE_CAPACITY)

    def held_out_error(self, params: vae.Params, stats: vae.Params,
                       grains: jax.Array | None = None) -> jax.Array:
        """Mean squared error of held-out grains (all of them, or ``grains``) decoded from their
        posterior means (as played: running statistics), over the held-out grains' mean power."""
        grains = self.held_out if grains is None else grains
        mean, _, _ = vae.encode(params, grains, stats)
        decoded, _ = vae.decode(params, mean, stats)
        return jnp.mean((decoded - grains) ** 2) / self.held_out_power

    def step(self, state: VaeState) -> VaeState:
        c = self.config
        key, pick, noise, held_pick, live_pick, share_pick = jax.random.split(state.key, 6)
        batch = self.train[jax.random.randint(pick, (c.batch,), 0, self.train.shape[0])]
        heard = state.live[jax.random.randint(live_pick, (c.batch,), 0, jnp.maximum(state.live_count, 1))]
        from_live = (jax.random.uniform(share_pick, (c.batch,)) < c.live_share) & (state.live_count > 0)
        batch = jnp.where(from_live[:, None], heard, batch)
        loss_fn = lambda p: vae.negative_elbo(p, batch, noise, c.beta)  # noqa: E731
        (loss, (reconstruction, kl, moments)), grad = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = self.optimizer.update(grad, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        stats = dict(state.stats)
        for name, (mean, var) in moments.items():
            stats[f"{name}_mean"] = c.momentum * state.stats[f"{name}_mean"] + (1 - c.momentum) * mean
            stats[f"{name}_var"] = c.momentum * state.stats[f"{name}_var"] + (1 - c.momentum) * var
        steps = state.steps + 1
        held_batch = self.held_out[jax.random.randint(held_pick, (c.held_out_batch,), 0,
                                                       self.held_out.shape[0])]
        measured = self.held_out_error(params, stats, held_batch)
        weight = jnp.maximum(0.05, 1.0 / steps.astype(jnp.float32))  # a mean of the last ~20
        held = jnp.where(steps == 1, measured, (1 - weight) * state.held_out_error + weight * measured)
        return state._replace(params=params, stats=stats, opt_state=opt_state, key=key, steps=steps,
                              loss=loss, reconstruction=reconstruction, kl=kl,
                              grad_norm=optax.tree.norm(grad), held_out_error=held)

    def summary(self, state: VaeState) -> dict[str, jax.Array]:
        return {"loss": state.loss, "reconstruction": state.reconstruction, "kl": state.kl,
                "grad_norm": state.grad_norm, "held_out_error": state.held_out_error, "steps": state.steps,
                "heard": state.live_count}

    def describe(self) -> dict[str, Any]:
        """The training settings (not the data: a rehearsed model goes on learning other grains)."""
        return asdict(self.config)

    # Playing --------------------------------------------------------------------------------------
    @staticmethod
    def decode_points(params: vae.Params, stats: vae.Params, points: jax.Array) -> jax.Array:
        """(N, 16) latent points -> (N, 512) grains, as played (running statistics)."""
        return vae.decode(params, points, stats)[0]

    @staticmethod
    def encode_means(params: vae.Params, stats: vae.Params, grains: jax.Array) -> jax.Array:
        return vae.encode(params, grains, stats)[0]

    def encoded_means(self, state: VaeState, grains: jax.Array) -> jax.Array:
        """:meth:`encode_means` with a state's model (``Trainer.ask`` in a training process)."""
        return vae.encode(state.params, grains, state.stats)[0]


def to_numpy(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)
