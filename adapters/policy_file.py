"""The marketing policy the API ranks with, re-read when its file changes (no restart).

Marketing edits ``levers.json`` (or the file named by NBO_API__LEVERS_FILE); every
``NBO_API__POLICY_POLL_S`` the API checks the file's size and modification time and, when they
changed, validates and swaps in the new policy. A file that fails validation is refused with the
reason in the log, and the policy in force keeps serving until the file is fixed."""

from __future__ import annotations

import logging
from pathlib import Path

from adapters.watched_file import WatchedFile
from decisioning import LEVERS_FILE, Policy, PolicyError, load_policy

log = logging.getLogger("nbo.api.policy")


class PolicyHolder(WatchedFile[Policy]):
    """The ``PolicySource`` over the levers file (``path``; default the packaged one)."""

    error = PolicyError

    def __init__(self, path: Path | None = None) -> None:
        """Loads the file now; a bad file raises ``PolicyError`` (the API refuses to start)."""
        super().__init__(path or LEVERS_FILE)

    def load(self, path: Path) -> Policy:
        return load_policy(path)

    def on_refused(self, exc: Exception) -> None:
        log.error("keeping the policy in force: %s", exc)

    def on_swapped(self, old: Policy, new: Policy) -> None:
        log.warning("marketing policy reloaded from %s", self.path)
