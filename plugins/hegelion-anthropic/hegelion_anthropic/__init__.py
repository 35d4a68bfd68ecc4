"""hegelion-anthropic: the ``anthropic`` teacher, Claude through the Messages API."""

from hegelion_anthropic.teacher import AnthropicTeacher

__all__ = ["AnthropicTeacher"]
