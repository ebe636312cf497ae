"""The marketing policy the API ranks with, re-read when its file changes (no restart).

Marketing edits ``levers.json`` (or the file named by NBO_API__LEVERS_FILE); every
``NBO_API__POLICY_POLL_S`` the API checks the file's size and modification time and, when they
changed, validates and swaps in the new policy. A file that fails validation is refused with the
reason in the log, and the policy in force keeps serving until the file is fixed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from decisioning import LEVERS_FILE, Policy, PolicyError, load_policy

log = logging.getLogger("nbo.api.policy")


class PolicyHolder:
    def __init__(self, path: Path | None = None) -> None:
        """Loads the file now; a bad file raises ``PolicyError`` (the API refuses to start)."""
        self.path = path or LEVERS_FILE
        self._stamp = self._read_stamp()
        self.current: Policy = load_policy(self.path)
        self.failed_stamp: tuple[int, int] | None = None

    @property
    def refused(self) -> bool:
        return self.failed_stamp is not None

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def refresh(self) -> bool:
        """Load the file if it changed since the last look; True if the policy was swapped."""
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp or stamp == self.failed_stamp:
            return False
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.failed_stamp = stamp
            log.error("keeping the policy in force: %s", exc)
            return False
        self.current, self._stamp, self.failed_stamp = policy, stamp, None
        log.warning("marketing policy reloaded from %s", self.path)
        return True
