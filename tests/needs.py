"""What to do when a test's outside need (Redis, Chromium, Node packages) is missing."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip with `reason` on a developer's machine; fail under CI (`CI=true`), where every need
    is installed by the project's own scripts, so that nothing hides behind a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
