"""The gguf and merged exporters pass core's exporter contract suite."""

from __future__ import annotations

import pytest

from hegelion_core.testing import ExporterContract
from hegelion_gguf.export.exporters import GGUFExporter, MergedExporter


class TestGGUFExporter(ExporterContract):
    @pytest.fixture
    def driver(self):
        return GGUFExporter({"quantization": "q5_k_m", "stop": ["###"]})


class TestMergedExporter(ExporterContract):
    @pytest.fixture
    def driver(self):
        return MergedExporter()
