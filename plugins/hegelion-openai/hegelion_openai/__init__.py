"""hegelion-openai: the ``openai`` teacher, for OpenAI and every OpenAI-compatible server."""

from hegelion_openai.teacher import OpenAITeacher

__all__ = ["OpenAITeacher"]
