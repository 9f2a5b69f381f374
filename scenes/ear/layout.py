"""Seeing the ear: its neurons as a graph laid out by forces (../shared/REFERENCE-EAR.md, "Seeing it").

**The graph.** A vertex per drawn neuron (layer, bin, channel; time left out). Edges follow the
layers' connectivity: a neuron feeds the next layer's neurons at the bin its own falls in (its bin
divided by the layer's frequency stride), to ``FAN`` of their channels (a fixed pseudo-random
choice: all of them would be 100,000 edges that only pull each ribbon into a ball); the code and
autoregressive layers (one bin) connect the same way, with the residual identity edges kept.

**The forces** on vertex i: attraction along edges ``w (p_j - p_i)`` (w = 1); repulsion
``q_i q_j (p_i - p_j) / |p_i - p_j|^3`` with charges ``q`` = each neuron's activation variance (over
the data the ear learned) normalised to mean 1; centring ``-l p_i``. All pairs exactly, in row blocks
(``1/|d|`` by rsqrt): the figure at 3,328 vertices is in docs/benchmarks.md. Integration: damped
velocity Verlet. Energy (what falls): ``sum_edges |d|^2 / 2 + sum_pairs q_i q_j / |d| + l |p|^2 / 2``.

**Multilevel.** To avoid poor minima the layout starts from a coarse graph (neighbouring bins and
channels of a layer merged, about 4x fewer vertices per level), lays it out, places every finer
vertex at its group's place (plus a little jitter) and goes on, raising the centring force at each
level.

The result is cached beside the checkpoint (``CKPT.layout.npz``, keyed by the checkpoint's bytes):
loading the ear again reads it back bit for bit.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scenes.ear import network

FAN = 4
BLOCK = 512
EPS = 1e-4


@dataclass(frozen=True)
class Graph:
    layer: np.ndarray  # (N,) index into network.LAYERS
    bin: np.ndarray  # (N,)
    channel: np.ndarray  # (N,)
    edges: np.ndarray  # (E, 2) vertex indices

    def __len__(self) -> int:
        return len(self.layer)


def neuron_graph(seed: int = 0) -> Graph:
    """Every drawn neuron of :mod:`scenes.ear.network` in layer order (bin-major within a layer:
    vertex ``offset + bin * channels + channel``) and the edges between them."""
    shapes = network.layer_shapes()
    names = list(network.LAYERS)
    offsets, layer, bins, channels, total = {}, [], [], [], 0
    for index, name in enumerate(names):
        b, c = shapes[name]
        offsets[name] = total
        grid_b, grid_c = np.meshgrid(np.arange(b), np.arange(c), indexing="ij")
        layer.append(np.full(b * c, index))
        bins.append(grid_b.ravel())
        channels.append(grid_c.ravel())
        total += b * c
    rng = np.random.default_rng(seed)
    edges = []
    for name, following in zip(names[:-1], names[1:]):
        b, c = shapes[name]
        nb, nc = shapes[following]
        stride = max(1, b // nb)
        for bin_ in range(b):
            target_bin = min(bin_ // stride, nb - 1) if nb > 1 else 0
            for channel in range(c):
                fan = rng.choice(nc, size=min(FAN, nc), replace=False)
                source = offsets[name] + bin_ * c + channel
                for other in fan:
                    edges.append((source, offsets[following] + target_bin * nc + other))
                if name in ("code", "a0", "a1") and c == nc:  # residual / identity
                    edges.append((source, offsets[following] + channel))
    return Graph(np.concatenate(layer), np.concatenate(bins), np.concatenate(channels),
                 np.unique(np.array(edges, np.int32), axis=0))


def charges(graph: Graph, var: dict[str, np.ndarray]) -> np.ndarray:
    """Each vertex's activation variance normalised to mean 1 (clipped to 0.1 .. 10)."""
    values = np.concatenate([np.asarray(var[name], np.float64).ravel() for name in network.LAYERS])
    values = np.where(np.isfinite(values), values, 1.0)
    values = values / max(values.mean(), 1e-12)
    return np.clip(values, 0.1, 10.0).astype(np.float32)


def _forces(p, q, edges, centring):
    """Forces on every vertex: all-pairs repulsion in row blocks, attraction along edges, centring."""
    n = p.shape[0]
    pad = (-n) % BLOCK
    x, y = p[:, 0], p[:, 1]
    px, py, pq = (jnp.pad(a, (0, pad)) for a in (x, y, q))

    def block(start):
        rx, ry, rq = (jax.lax.dynamic_slice(a, (start,), (BLOCK,)) for a in (px, py, pq))
        dx, dy = rx[:, None] - x[None, :], ry[:, None] - y[None, :]
        inv = jax.lax.rsqrt(dx * dx + dy * dy + EPS)
        strength = rq[:, None] * q[None, :] * inv * inv * inv
        return jnp.sum(strength * dx, axis=1), jnp.sum(strength * dy, axis=1)

    fx, fy = jax.lax.map(block, jnp.arange(0, n + pad, BLOCK))
    repulsion = jnp.stack([fx.reshape(-1)[:n], fy.reshape(-1)[:n]], axis=1)
    d = p[edges[:, 1]] - p[edges[:, 0]]
    attraction = jnp.zeros_like(p).at[edges[:, 0]].add(d).at[edges[:, 1]].add(-d)
    return attraction + repulsion - centring * p


@jax.jit
def _iterate(p, v, q, edges, centring, dt, count):
    """``count`` damped velocity-Verlet iterations."""
    def body(_, carry):
        p, v = carry
        v = 0.85 * v + dt * jnp.clip(_forces(p, q, edges, centring), -50.0, 50.0)
        return p + dt * v, v

    return jax.lax.fori_loop(0, count, body, (p, v))


def energy(edges: np.ndarray, positions: np.ndarray, q: np.ndarray, centring: float) -> float:
    """The layout's energy (float64, numpy): springs, pairwise charges, centring."""
    p = np.asarray(positions, np.float64)
    q = np.asarray(q, np.float64)
    d = p[edges[:, 1]] - p[edges[:, 0]]
    total = 0.5 * np.sum(d * d) + 0.5 * centring * np.sum(p * p)
    for start in range(0, len(p), BLOCK):
        rows = p[start:start + BLOCK]
        dist = np.sqrt(np.sum((rows[:, None, :] - p[None, :, :]) ** 2, axis=-1) + EPS)
        pair = q[start:start + BLOCK, None] * q[None, :] / dist
        index = np.arange(start, start + len(rows))
        pair[index - start, index] = 0.0
        total += 0.5 * pair.sum()
    return float(total)


def _coarsen(graph: Graph, factor: int) -> np.ndarray:
    """Each vertex's group at a level: neighbouring bins and channels of a layer merged ``factor``
    each way (about factor^2 fewer vertices); returns (N,) group ids, 0 .. groups - 1."""
    key = np.stack([graph.layer, graph.bin // factor, graph.channel // factor], axis=1)
    _, group = np.unique(key, axis=0, return_inverse=True)
    return group.ravel()


def lay_out(graph: Graph, q: np.ndarray, seed: int = 0, iterations: int = 150,
            levels: tuple[int, ...] = (8, 4, 2, 1), record: list | None = None) -> np.ndarray:
    """(N, 2) float32 positions, centred, inside the unit circle (radially compressed, so a few
    strays far out do not shrink the rest). ``record`` gets (level, energies)."""
    rng = np.random.default_rng(seed)
    positions = None
    previous_group = None
    for depth, factor in enumerate(levels):
        group = _coarsen(graph, factor)
        count = int(group.max()) + 1
        group_q = np.bincount(group, weights=q, minlength=count).astype(np.float32)
        group_q /= max(group_q.mean(), 1e-12)
        edges = np.unique(np.sort(group[graph.edges], axis=1), axis=0)
        edges = edges[edges[:, 0] != edges[:, 1]].astype(np.int32)
        if positions is None:
            p = rng.normal(0.0, np.sqrt(count), (count, 2)).astype(np.float32)
        else:
            # finer vertices start at their coarse group's place
            parent = np.zeros(count, np.int64)
            parent[group] = previous_group
            p = positions[parent] + rng.normal(0.0, 0.3, (count, 2)).astype(np.float32)
        centring = 0.01 * (2 ** depth)
        energies = []
        pj, vj = jnp.asarray(p), jnp.zeros((count, 2), jnp.float32)
        for _chunk in range(iterations // 25):
            pj, vj = _iterate(pj, vj, jnp.asarray(group_q), jnp.asarray(edges), centring, 0.05, 25)
            if record is not None:
                energies.append(energy(edges, np.asarray(pj), group_q, centring))
        if record is not None:
            record.append((factor, energies))
        positions, previous_group = np.asarray(pj), group
    positions = positions - np.median(positions, axis=0)
    reach = max(float(np.percentile(np.linalg.norm(positions, axis=1), 95)), 1e-6)
    scaled = positions / reach
    radius = np.maximum(np.linalg.norm(scaled, axis=1, keepdims=True), 1e-9)
    # radially compressed: the bulk keeps its shape, strays far out come to rest near the rim
    return (scaled * np.tanh(1.3 * radius) / radius).astype(np.float32)


def checkpoint_key(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cached_layout(checkpoint: Path | None, graph: Graph, q: np.ndarray, seed: int = 0) -> np.ndarray:
    """The layout cached beside ``checkpoint`` when its key matches; else computed (and cached,
    when the folder is writable; a read-only folder only costs the layout again next time)."""
    if checkpoint is None:
        return lay_out(graph, q, seed)
    cache = Path(str(checkpoint) + ".layout.npz")
    key = checkpoint_key(checkpoint)
    if cache.exists():
        try:
            with np.load(cache) as stored:
                if str(stored["key"]) == key and stored["positions"].shape == (len(graph), 2):
                    return stored["positions"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):  # cut short, garbled: laid out again
            pass
    positions = lay_out(graph, q, seed)
    try:
        temporary = cache.with_name(cache.name + ".part.npz")
        np.savez(temporary, key=key, positions=positions)
        temporary.replace(cache)
    except OSError:
        pass
    return positions
