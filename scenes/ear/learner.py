"""The ear as a learner (engine.learners.protocol): its state, its step (a batch of 4-s clips, the
InfoNCE loss, an optax adam update) and its summary (loss, prediction accuracy on the batch and on
held-out clips, gradient norm).

The state also keeps every drawn neuron's activation statistics (running mean and variance of its
pre-activation over the clips it trained on): the picture lights a neuron by its activation
normalised by them, and input optimisation raises normalised activations (a neuron behind a ReLU
that never fires would otherwise give no gradient). A checkpoint therefore carries them.

The scaleograms of the sources are the learner's data table, baked into its compiled code. On
stage the ear can go on learning from what it hears: clips of scaleogram frames are fed to it
(:meth:`EarCpc.absorb`, ``Trainer.feed``) into a ring of :data:`LIVE_FRAMES` frames in its state,
and ``live_share`` of every batch is cut from them once a whole clip is there.
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
        live_share: of each batch, the share of clips cut from the sound heard on stage (once
            any was fed); 1 learns the show's sound alone.
    """

    batch: int = 8
    learning_rate: float = 1e-3
    held_out_batch: int = 8
    momentum: float = 0.98
    live_share: float = 0.5


LIVE_FRAMES = 8 * network.CLIP_FRAMES  # scaleogram frames heard on stage, kept (32 s), a ring


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
    live: jax.Array  # (LIVE_FRAMES, 96): scaleogram frames heard on stage, a ring
    live_count: jax.Array  # how many are filled
    live_next: jax.Array  # where the next goes


class EarCpc(Learner[EarState]):
    name = "ear"
    version = 2
    fused_steps = False  # convolutions: one compiled step a call (see Learner.fused_steps)

    def __init__(self, spectra: Spectra, config: EarConfig | None = None) -> None:
        self.config = config or EarConfig()
        self.spectra = spectra
        self.frames = jnp.asarray(spectra.frames)
        self.train_starts = jnp.asarray(spectra.train_starts)
        self.held_out_starts = jnp.asarray(spectra.held_out_starts)
        self.optimizer = optax.adam(self.config.learning_rate)
        # a clip of scaleogram frames heard on stage (the first ``count`` are new)
        self.feed_example = {"frames": jax.ShapeDtypeStruct((network.CLIP_FRAMES, network.BINS), jnp.float32),
                             "count": jax.ShapeDtypeStruct((), jnp.int32)}

    def recipe(self):  # made again in a training process: its optimizer's closures do not pickle
        return type(self), (self.spectra, self.config)

    def init(self, seed: jax.Array) -> EarState:
        params_key, key = jax.random.split(jax.random.PRNGKey(seed))
        params = network.init_params(params_key)
        zero = jnp.zeros((), jnp.float32)
        shapes = network.layer_shapes()
        return EarState(params=params, opt_state=self.optimizer.init(params), key=key,
                        steps=jnp.zeros((), jnp.int32), loss=zero, accuracy=zero, held_out_accuracy=zero,
                        grad_norm=zero, mean={n: jnp.zeros(s, jnp.float32) for n, s in shapes.items()},
                        var={n: jnp.ones(s, jnp.float32) for n, s in shapes.items()},
                        live=jnp.full((LIVE_FRAMES, network.BINS), -1.0, jnp.float32),
                        live_count=jnp.zeros((), jnp.int32), live_next=jnp.zeros((), jnp.int32))

    def absorb(self, state: EarState, data: dict[str, jax.Array]) -> EarState:
        """The newest ``data["count"]`` frames of ``data["frames"]`` (the last of the clip) into
        the ring, oldest first."""
        count = jnp.clip(data["count"], 0, network.CLIP_FRAMES)
        index = jnp.arange(network.CLIP_FRAMES)
        new = jnp.roll(data["frames"], count, axis=0)  # the newest ``count`` frames first
        where = (state.live_next + index) % LIVE_FRAMES
        kept = (index < count)[:, None]
        live = state.live.at[where].set(jnp.where(kept, new, state.live[where]))
        return state._replace(live=live, live_count=jnp.minimum(state.live_count + count, LIVE_FRAMES),
                              live_next=(state.live_next + count) % LIVE_FRAMES)

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
        clips = self.clips(starts)
        # clips heard on stage: whole clips of the ring's filled part, ending at a frame written
        live_pick, share_pick = jax.random.split(jax.random.fold_in(pick, 1))
        filled = jnp.maximum(state.live_count - network.CLIP_FRAMES + 1, 1)
        ends = state.live_next - 1 - jax.random.randint(live_pick, (c.batch,), 0, filled)
        index = (ends[:, None] - network.CLIP_FRAMES + 1 + jnp.arange(network.CLIP_FRAMES)[None, :]) % LIVE_FRAMES
        heard = state.live[index]
        from_live = (jax.random.uniform(share_pick, (c.batch,)) < c.live_share) & \
            (state.live_count >= network.CLIP_FRAMES)
        clips = jnp.where(from_live[:, None, None], heard, clips)
        loss_fn = lambda p: network.info_nce(p, clips)  # noqa: E731
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
    def for_playing(cls, config: EarConfig | None = None) -> EarCpc:
        """An ear with no data of its own: for loading a checkpoint to listen and dream with, or to
        learn on stage from what it hears alone (``live_share`` 1; until a clip was heard its
        steps would learn silence: the scene starts training only once one was)."""
        silence = np.full((2 * network.CLIP_FRAMES, network.BINS), -1.0, np.float32)
        starts = np.zeros(1, np.int32)
        return cls(Spectra(silence, starts, starts, ("silence",), 0.0), config)

    def summary(self, state: EarState) -> dict[str, jax.Array]:
        return {"loss": state.loss, "accuracy": state.accuracy, "held_out_accuracy": state.held_out_accuracy,
                "grad_norm": state.grad_norm, "steps": state.steps, "heard": state.live_count}

    def describe(self) -> dict[str, Any]:
        return asdict(self.config)


def load_ear(path) -> EarState:
    """A checkpoint of the ear (``showrunner train ear``) for listening and dreaming; UserError (one
    line) for a missing or damaged file (engine.learners.checkpoint)."""
    from engine.learners import checkpoint

    return checkpoint.load(path, EarCpc.for_playing())
