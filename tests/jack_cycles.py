"""Reading the test JACK server's reports of missed cycles (the ``jack_log`` fixture's lines).

jackd prints, at the start of a cycle, each client that had not finished the last one ("JackEngine::
XRun: client = NAME was not finished, state = ..."), on its unbuffered stderr, so a line read here
comes within moments of the cycle it reports. jackd can drop a message when its message buffer
is busy, so a missed cycle can go unreported: a rule built on these lines can wrongly fail, never
wrongly pass.

The rule holds whichever way the server runs (``SHOWRUNNER_JACK_MODE``, tests/conftest.py): the
``jack`` fixture runs it realtime (``jackd -R``) where the machine allows, which makes missed cycles
rarer, and ``--no-realtime`` where it does not, where they are common on a loaded machine.
"""

from __future__ import annotations

MISSED_CYCLE = "was not finished"
REPORTED_WITHIN = (-0.01, 0.05)  # seconds from a MIDI message's sending to the report of its cycle


def missed_cycles(server_log: list[tuple[float, str]], since: float, until: float,
                  clients: tuple[str, ...] = ()) -> list[str]:
    """The reports of a missed cycle between two ``time.monotonic()`` moments, of the named
    clients (a name, or the start of one) or, with none named, of any client."""
    found = []
    for stamp, line in list(server_log):  # a copy: the reader thread appends meanwhile
        if since <= stamp <= until and MISSED_CYCLE in line:
            client = line.partition("client = ")[2].partition(" ")[0]
            if not clients or client.startswith(clients):
                found.append(line)
    return found


def left_out(wanted: list[str], got: list[str]) -> list[int] | None:
    """The indices of ``wanted`` missing from ``got`` when ``got`` is ``wanted`` with some events
    left out (nothing added, changed or moved); otherwise None. In a run of identical events, the
    last ones count as missing: see :func:`unexplained_losses`."""
    missing, next_got = [], 0
    for index, text in enumerate(wanted):
        if next_got < len(got) and got[next_got] == text:
            next_got += 1
        else:
            missing.append(index)
    return missing if next_got == len(got) else None


def unexplained_losses(wanted: list[str], missing: list[int], sent: list[float],
                       server_log: list[tuple[float, str]], clients: tuple[str, ...]) -> list[int]:
    """The missing indices that no missed cycle of ``clients`` explains: one reported just after
    the event was sent (``sent``: each event's ``time.monotonic()``). A missing event that has
    twins right before or after it (the same text) is explained by a missed cycle just after any
    of them, since which of the twins was lost cannot be told."""
    unexplained = []
    for index in missing:
        first = last = index
        while first > 0 and wanted[first - 1] == wanted[index]:
            first -= 1
        while last + 1 < len(wanted) and wanted[last + 1] == wanted[index]:
            last += 1
        if not any(missed_cycles(server_log, sent[twin] + REPORTED_WITHIN[0], sent[twin] + REPORTED_WITHIN[1],
                                 clients) for twin in range(first, last + 1)):
            unexplained.append(index)
    return unexplained
