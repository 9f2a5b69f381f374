"""Checking that a malformed setlist fails the way a performer should see it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UserError
from engine.setlist import load_setlist


def check_one_line_error(path: Path, expected: list[str]) -> str:
    """Loading ``path`` raises a one-line UserError naming the file and holding every expected part."""
    with pytest.raises(UserError) as caught:
        load_setlist(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} missing from: {message}"
    return message
