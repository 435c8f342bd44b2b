"""Fixtures of the end-to-end tests: the seed news site on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from newsroom import Newsroom


@pytest.fixture
def newsroom(shared_dir: Path) -> Iterator[Newsroom]:
    """The seed site (tests/integration/newsroom.py), its feed listing all four stories."""
    site = Newsroom(shared_dir)
    yield site
    site.close()
