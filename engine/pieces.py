"""Pieces as plug-ins: a piece is a Python package that brings its scenes (and instruments,
learners, shaders); importing it registers them by name. The engine never imports a piece itself:
it finds pieces by name, among the ``showrunner.pieces`` entry points of the installed packages
(this project registers its own, ``builtin`` and ``ldd``, in pyproject.toml), or as an importable
module path (``mypieces.grains``).

A setlist names the pieces it uses (``pieces = ["ldd"]``); one that names none gets every installed
piece. ``docs/scenes.md`` shows how to write one.

A piece's instruments are found by kind too, among the ``showrunner.instruments`` entry points:
a rack may play a kind no loaded piece registered (a setlist without ``[sound]`` plays
``overtones`` whatever its pieces), and then only that instrument's module is imported, not its
piece (no scenes, no jax).
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

from engine.errors import UserError

log = logging.getLogger("showrunner.pieces")

GROUP = "showrunner.pieces"
TRAINING = "showrunner.training"  # models a piece trains offline: name -> module with main(argv)
INSTRUMENTS = "showrunner.instruments"
_loaded: set[str] = set()
_everything = False  # every installed piece has been loaded


def installed() -> dict[str, str]:
    """Every installed piece: name -> module path."""
    return {point.name: point.value for point in entry_points(group=GROUP)}


def load(names: list[str] | None = None) -> list[str]:
    """Import the pieces called ``names`` (every installed one when None), registering their
    scenes and instruments; returns the module paths imported. An unknown piece is a one-line
    :class:`UserError` listing the installed ones."""
    global _everything
    if names is None and _everything:
        return sorted(_loaded)
    known = installed()
    wanted = list(known) if names is None else names
    modules = []
    for name in wanted:
        module = known.get(name, name)
        if module not in _loaded:
            if not all(part.isidentifier() for part in str(module).split(".")):  # "", ".x", "a..b"
                raise UserError(f"no piece '{name}': a piece is an installed piece's name "
                                f"({', '.join(sorted(known)) or 'none'}) or a module path such as 'mypieces.grains'")
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as error:
                if error.name and module.startswith(error.name):
                    raise UserError(f"no piece '{name}' (installed pieces: {', '.join(sorted(known)) or 'none'}; "
                                    f"or a module path such as 'mypieces.grains')") from None
                raise
            _loaded.add(module)
            log.debug("piece %s (%s) loaded", name, module)
        modules.append(module)
    if names is None:
        _everything = True
    return modules


def installed_instruments() -> dict[str, str]:
    """Every instrument an installed piece brings: kind -> module path."""
    return {point.name: point.value for point in entry_points(group=INSTRUMENTS)}


def load_instrument(kind: str) -> bool:
    """Import the module an installed piece names for the instrument ``kind`` (which registers it),
    without the rest of the piece; False when no installed piece brings that kind."""
    module = installed_instruments().get(kind)
    if module is None:
        return False
    try:
        importlib.import_module(module)
    except ImportError as error:  # an entry point left behind by a piece no longer there
        raise UserError(f"instrument kind '{kind}': its module {module} (an installed piece's "
                        f"entry point) cannot be imported: {error}") from None
    log.debug("instrument %s (%s) loaded", kind, module)
    return True


def installed_training() -> dict[str, str]:
    """Every model an installed piece can train offline (``showrunner train NAME``): name -> module."""
    return {point.name: point.value for point in entry_points(group=TRAINING)}


def training_main(name: str):
    """The ``main(argv) -> int`` of the module that trains model ``name``; UserError naming the
    models there are when no installed piece brings it."""
    module = installed_training().get(name)
    if module is None:
        known = ", ".join(sorted(installed_training())) or "none"
        raise UserError(f"no model '{name}' to train (installed: {known})")
    try:
        return importlib.import_module(module).main
    except ImportError as error:
        raise UserError(f"model '{name}': its module {module} cannot be imported: {error}") from None
