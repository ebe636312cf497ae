"""The running product for end-to-end tests: the real worker and API as child processes on
the session's real broker and Redis, started the way ``nbo demo`` starts them."""

from __future__ import annotations

from typing import Iterator

import pytest

from services.stack import Stack


@pytest.fixture(scope="session")
def stack(servers, tmp_path_factory) -> Iterator[Stack]:
    running = Stack(servers, tmp_path_factory.mktemp("stack-logs"),
                    extra_env={"NBO_DATA_DIR": str(tmp_path_factory.mktemp("stack-data"))})
    try:
        running.start_worker()
        running.start_api()
        yield running
    finally:
        running.stop()
