"""The echo teacher passes core's teacher contract suite."""

import pytest
from hegelion_echo.teacher import EchoTeacher

from hegelion_core.testing import TeacherContract


class TestEchoTeacher(TeacherContract):
    @pytest.fixture
    def driver(self):
        return EchoTeacher({"prefix": "Q"})

    @pytest.fixture
    def cut_call(self):
        return None  # no model behind it: nothing is ever cut
