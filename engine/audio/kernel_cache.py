"""numba's cache for the audio kernels, made stale by a change to any of their files.

numba keeps each compiled kernel beside its source and checks only that source file when it loads
it (numba issue 1833). The audio kernels call and inline each other across files (the rack's
one-call block inlines the shared memory's layout, the arena's accessors, the granulator's and
the limiter's kernels), so a change to one file would leave another file's cached kernel running
the old machine code: writing the health report at old offsets, say. Here each kernel of this
package is stamped with a digest of every source file of the package instead: any change to any of
them recompiles them all (seconds, at ``make setup`` or the next warm-up).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching

FOLDER = Path(__file__).resolve().parent


def digest() -> str:
    """The package's kernel sources, hashed (every ``*.py`` here, in name order)."""
    hashed = hashlib.sha256()
    for path in sorted(FOLDER.glob("*.py")):
        hashed.update(path.name.encode())
        hashed.update(path.read_bytes())
    return hashed.hexdigest()


_DIGEST = digest()
_IN_TREE = getattr(caching, "InTreeCacheLocator", None) or caching._InTreeCacheLocator
_USER_WIDE = getattr(caching, "UserWideCacheLocator", None) or caching._UserWideCacheLocator
_USER_PROVIDED = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator
_IMPL = getattr(caching, "CacheImpl", None) or caching._CacheImpl


class _Stamped:
    """A locator of this package's kernels whose source stamp is :func:`digest`."""

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            if Path(py_file).resolve().parent != FOLDER:
                return None
        except OSError:
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return ("showrunner-audio", _DIGEST)


class UserProvidedLocator(_Stamped, _USER_PROVIDED):
    """In ``NUMBA_CACHE_DIR``, when it is set."""


class InTreeLocator(_Stamped, _IN_TREE):
    """Beside the sources (``__pycache__``), as numba's default."""


class UserWideLocator(_Stamped, _USER_WIDE):
    """In the user's cache folder, where the sources' folder is read-only."""


def install() -> None:
    """Put the stamped locators first in numba's list (idempotent): kernels decorated after this
    (this package's modules, imported after its ``__init__``) use them."""
    locators = _IMPL._locator_classes
    for locator in (UserWideLocator, InTreeLocator, UserProvidedLocator):
        if locator not in locators:
            locators.insert(0, locator)
