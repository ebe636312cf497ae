"""Decision ids for the offer responses and the decision log."""

from __future__ import annotations

import itertools
import os


class DecisionIds:
    """Decision ids, "d-" + 32 hex digits: 16 random ones drawn when the process starts, then a
    counter. Unique across replicas and restarts (a 64-bit random prefix each) without a system
    call per request, as ``uuid4`` makes."""

    def __init__(self) -> None:
        self._prefix = "d-" + os.urandom(8).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"
