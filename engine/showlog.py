"""One log file per show (full detail, tracebacks included); concise lines on the console."""

from __future__ import annotations

import faulthandler
import logging
import sys
import time
from pathlib import Path

from engine.errors import UserError

LOGGER = "showrunner"


def start_show_log(folder: str | Path = "logs", console_level: int = logging.INFO) -> Path:
    """Log to ``folder/show-YYYYmmdd-HHMMSS.log`` at DEBUG and to stderr at ``console_level``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create log folder {folder}: {error.strerror}") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"show-{stamp}.log"
    suffix = 1
    while path.exists():
        path = folder / f"show-{stamp}-{suffix}.log"
        suffix += 1
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_file.setLevel(logging.DEBUG)
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setFormatter(logging.Formatter("%(message)s"))
    to_console.setLevel(console_level)
    logger.addHandler(to_file)
    logger.addHandler(to_console)
    logger.propagate = False
    # A fault in C (a driver's segfault, an abort) ends the process without a Python traceback:
    # each thread's stack goes into the show log then, for the report.
    faulthandler.enable(file=to_file.stream, all_threads=True)
    return path
