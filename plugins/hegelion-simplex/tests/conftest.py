from __future__ import annotations

from collections.abc import Iterator

import pytest

from hegelion_core.plugins import reset_plugin_manager


@pytest.fixture(autouse=True)
def _fresh_plugin_manager() -> Iterator[None]:
    reset_plugin_manager()
    yield
    reset_plugin_manager()
