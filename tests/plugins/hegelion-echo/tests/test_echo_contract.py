"""The echo teacher passes core's teacher contract suite."""

import pytest
from hegelion_echo.teacher import EchoTeacher

from hegelion_core.testing import TeacherContract


class TestEchoTeacher(TeacherContract):
    @pytest.fixture
    def driver(self):
        return EchoTeacher({"prefix": "Q"})
