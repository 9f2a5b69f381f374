"""Snapshots of a running show: its whole state between two frames, as bytes, and back.

A render farm (engine/farm.py) ticks a show through its performance log without drawing, saves a
snapshot at each chunk boundary, and each worker restores one into a show it loaded itself from the
same setlist, then draws its chunk. What a snapshot holds is everything that decides what comes
next: the scenes and what they own (learners and their optimizer state, trails, random generators),
the scene stack, the playhead, the clock, pedals, the note source being played, the MIDI queue, the
sound (the rack's voices and grains, the tables written during the show), MIDI learn.

How: the show's state is pickled whole, so shared objects stay shared and any plain Python object a
scene keeps needs nothing written for it. What cannot or must not travel (OpenGL objects, compiled
functions, threads and locks, files, the display, the performance log being replayed, the sample
pool's shared memory) is a *resource*: it is saved as the path by which the saving show reaches it
(``scenes[3].ribbon.program``) and restored as the object at that path in the show restoring it,
which loaded the same setlist and so made the same resources. A resource a show made after loading
that the restoring show lacks is a :class:`SnapshotError` naming its path (the round-trip tests of
every scene kind, tests/integration/test_snapshots.py, keep that from shipping). A class that holds
state the pickle cannot see gives ``__snapshot__`` / ``__restore__``: the sample pool does, for
the tables written during the show. A class names in ``snapshot_loaded`` the attributes that
loading makes and the show never changes (a learner's training grains, the ear's neuron
graph): they are saved by path too, as the restoring show has made the same (half a snapshot's
bytes, in the tour).
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import types
from collections import deque
from typing import Any

# Types whose module starts with one of these are resources (by path), except jax's arrays.
RESOURCE_MODULES = ("moderngl", "_moderngl", "glcontext", "pygame", "av", "cv2", "jax", "jaxlib", "numba",
                    "threading", "_thread", "queue", "_queue", "socket", "subprocess", "mido", "rtmidi",
                    "pythonosc", "multiprocessing", "mmap", "_io", "io", "logging", "ray", "rich",
                    "concurrent", "weakref", "_weakref", "selectors")
# The show's own attributes that are not its state: how it is driven and recorded, what it reports.
SHOW_DRIVER = ("setlist", "options", "time", "display", "video", "hud", "frame_sink", "recorder",
               "perf_log", "replay", "osc_in", "osc_out", "midi_out", "_metrics", "summary",
               "_said_at", "warm_up_failures", "_last_frame_ms", "_quit", "_end_at", "_compilations",
               "_trained", "_trainer_failed", "_error_counts", "_pending_events", "before_frame",
               "stop_at_frame", "draw_frames", "heartbeat", "_heartbeat_at", "recovered", "training_folder",
               "state_saver", "restored_at")
# Resources are looked for along these attributes first: paths through what every loaded show has
# (its scenes, by cue), not through what changes (the stack's current scene).
FIRST = ("display", "video", "hud", "scenes", "audio")


class SnapshotError(Exception):
    """A show's state could not be saved or restored (what and where, in one line)."""


_kinds: dict[type, bool] = {}


def _is_resource(obj: Any) -> bool:
    kind = type(obj)
    known = _kinds.get(kind)
    if known is None:
        known = _kinds[kind] = _resource_kind(kind)
    if known and isinstance(obj, types.FunctionType):
        return True
    return known


def _resource_kind(kind: type) -> bool:
    if getattr(kind, "snapshot_by_reference", False):
        return True
    jax = sys.modules.get("jax")
    if jax is not None and issubclass(kind, jax.Array):
        return False
    if kind is types.FunctionType:  # closures and lambdas; a module's own functions pickle by name
        return True
    if kind in (types.GeneratorType, types.CodeType, types.FrameType):
        return True
    module = (getattr(kind, "__module__", "") or "").split(".")[0]
    return module in RESOURCE_MODULES


def _function_by_name(obj) -> bool:
    """A module-level function pickles by its name (no path needed)."""
    qualname = getattr(obj, "__qualname__", "")
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return "<" not in qualname and module is not None and getattr(module, obj.__name__, None) is obj


def _children(obj: Any):
    """(step, child) pairs the walk follows: attributes, items, elements (leaves such as numbers and
    strings left out here: a trail or a history holds tens of thousands)."""
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            if isinstance(key, (str, int, tuple)) and not isinstance(value, _LEAVES):
                yield ("item", key), value
    elif isinstance(obj, (list, tuple, deque)):
        for index, value in enumerate(list(obj)):
            if not isinstance(value, _LEAVES):
                yield ("item", index), value
    else:
        fields = getattr(obj, "__dict__", None)
        if isinstance(fields, dict):
            for name, value in list(fields.items()):
                yield ("attr", name), value
        for name in getattr(type(obj), "__slots__", ()) if not isinstance(obj, type) else ():
            if isinstance(name, str) and not name.startswith("__") and hasattr(obj, name):
                yield ("attr", name), getattr(obj, name)


_LEAVES = (str, bytes, int, float, complex, bool, type(None), type)


def _resource_paths(root: Any, first: tuple[str, ...]) -> dict[int, tuple]:
    """Every resource reachable from ``root`` (breadth first, ``first`` attributes first) by the
    first path found; arrays and other leaves are not walked into."""
    import numpy as np

    jax = sys.modules.get("jax")
    paths: dict[int, tuple] = {}
    seen: set[int] = {id(root)}
    fields = vars(root)
    order = [name for name in first if name in fields] + [name for name in fields if name not in first]
    todo: deque = deque((( ("attr", name),), fields[name]) for name in order)
    while todo:
        path, obj = todo.popleft()
        if isinstance(obj, _LEAVES) or isinstance(obj, (np.ndarray, np.generic)) or id(obj) in seen:
            continue
        if jax is not None and isinstance(obj, jax.Array):
            continue
        seen.add(id(obj))
        if _is_resource(obj):
            if not (isinstance(obj, types.FunctionType) and _function_by_name(obj)):
                paths[id(obj)] = path
            continue
        if isinstance(obj, (types.ModuleType, types.MethodType)):
            if isinstance(obj, types.MethodType):
                todo.append((path + (("attr", "__self__"),), obj.__self__))
            continue
        for name in getattr(type(obj), "snapshot_loaded", ()):
            value = getattr(obj, name, None)
            if value is not None and not isinstance(value, _LEAVES) and id(value) not in seen:
                seen.add(id(value))
                paths[id(value)] = path + (("attr", name),)
        for step, child in _children(obj):
            todo.append((path + (step,), child))
    return paths


def _follow(root: Any, path: tuple) -> Any:
    obj = root
    for kind, key in path:
        obj = getattr(obj, key) if kind == "attr" else obj[key]
    return obj


def _describe(path: tuple) -> str:
    text = ""
    for kind, key in path:
        text += f".{key}" if kind == "attr" else f"[{key!r}]"
    return text.lstrip(".")


class _Saver(pickle.Pickler):
    def __init__(self, file, paths: dict[int, tuple], extra: list) -> None:
        super().__init__(file, protocol=5)
        self._paths = paths  # the show itself is at the empty path
        self._extra = extra  # (path, state) of resources that keep state (__snapshot__)

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _LEAVES):
            return None
        path = self._paths.get(id(obj))
        if path is not None:
            return path
        if _is_resource(obj):
            if isinstance(obj, types.FunctionType) and _function_by_name(obj):
                return None
            raise SnapshotError(f"cannot save a {type(obj).__module__}.{type(obj).__qualname__} the show "
                                "does not reach by attributes (keep it on the scene)")
        return None

    def reducer_override(self, obj: Any) -> Any:
        import numpy as np

        if isinstance(obj, np.ndarray) and isinstance(obj.base, np.ndarray):
            return _reduce_view(obj)
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        jax = sys.modules.get("jax")
        if jax is not None and isinstance(obj, jax.Array):
            return _reduce_jax_array(obj)
        return NotImplemented


def _reduce_view(view):
    """A numpy view stays a view of the same array (a mixer's channel views of its bus buffer
    must still be where the mixer writes), when the array it views owns its memory."""
    import numpy as np

    root = view.base
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.base is not None or type(view) is not np.ndarray:
        return NotImplemented  # memory numpy does not own (a file, a buffer): saved as a copy
    offset = view.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return _view, (root, view.dtype, view.shape, view.strides, offset)


def _view(root, dtype, shape, strides, offset):
    import numpy as np

    return np.ndarray(shape, dtype, buffer=root, offset=offset, strides=strides)


def _jax_array(data, key_impl: str | None = None):
    """A jax array back from its numpy copy, 64-bit where it was (a float64 learner's state stays
    float64 in a process whose jax default is 32-bit: engine.learners.precision)."""
    import jax

    with jax.enable_x64(data.dtype.itemsize == 8):
        array = jax.device_put(data)
        return jax.random.wrap_key_data(array, impl=key_impl) if key_impl is not None else array


def _reduce_jax_array(obj):
    import jax
    import numpy as np

    if jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
        return _jax_array, (np.asarray(jax.random.key_data(obj)), str(jax.random.key_impl(obj)))
    return _jax_array, (np.asarray(obj),)


class _Loader(pickle.Unpickler):
    def __init__(self, file, root: Any) -> None:
        super().__init__(file)
        self._root = root

    def persistent_load(self, path: Any) -> Any:
        try:
            return _follow(self._root, path)
        except (AttributeError, KeyError, IndexError, TypeError):
            raise SnapshotError(f"the restoring show has no {_describe(path)} (a resource made during the "
                                "show that loading does not make)") from None


def save(show: Any, frame: int, leave: tuple[str, ...] = ()) -> bytes:
    """The state of ``show`` between frames (at the top of frame ``frame`` of its loop), less its
    attributes named in ``leave`` (which the restoring show keeps its own of)."""
    paths = _resource_paths(show, FIRST)
    # The show itself, reached from its state (the scene stack's error handler is a bound method of
    # it), is the restoring show: saved as a copy, it would be a second show, with its drivers, that
    # the restored state calls into (a scene error counted where nobody reads it).
    paths[id(show)] = ()
    state = {name: value for name, value in vars(show).items() if name not in SHOW_DRIVER and name not in leave}
    extra = []
    for obj_id, path in paths.items():
        obj = _follow(show, path)
        if hasattr(obj, "__snapshot__"):
            extra.append((path, obj.__snapshot__()))
    buffer = io.BytesIO()
    try:
        _Saver(buffer, paths, extra).dump({"frame": frame, "now": show.time.now(), "state": state,
                                           "resources": extra})
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise SnapshotError(f"cannot save the show's state: {error}") from None
    return buffer.getvalue()


def restore(show: Any, data: bytes) -> int:
    """Put the state saved by :func:`save` into ``show`` (loaded from the same setlist, not yet
    run); returns the frame it was saved at. The show's time source is set to that moment."""
    saved = read(show, data)
    apply(show, saved)
    show.time.advance(saved["now"] - show.time.now())
    return saved["frame"]


def read(show: Any, data: bytes) -> dict:
    """The state saved by :func:`save`, read for ``show`` (its resources are ``show``'s), without
    changing ``show``: what goes wrong here leaves it as it was."""
    try:
        return _Loader(io.BytesIO(data), show).load()
    except SnapshotError:
        raise
    except Exception as error:  # a truncated or foreign file: unpickling raises anything
        raise SnapshotError(f"cannot read the saved state: {type(error).__name__}: {error}") from None


def apply(show: Any, saved: dict, keep: tuple[str, ...] = ()) -> None:
    """Put a state :func:`read` gave into ``show``; its own attributes named in ``keep`` stay."""
    for path, state in saved["resources"]:
        _follow(show, path).__restore__(state)
    vars(show).update({name: value for name, value in saved["state"].items() if name not in keep})
