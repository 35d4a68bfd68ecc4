"""The scripted server's former name: `hegelion_core.testing.scripted_server` holds it.

Kept so that existing imports and ``python -m hegelion_core.testing.openai_server``
(benchmarks, docs) keep working.
"""

from hegelion_core.testing.scripted_server import (
    Action,
    RecordedRequest,
    ScriptedAnthropicServer,
    ScriptedOpenAIServer,
    ScriptedServer,
    default_reply,
    example_from_schema,
    main,
)

__all__ = [
    "Action",
    "RecordedRequest",
    "ScriptedAnthropicServer",
    "ScriptedOpenAIServer",
    "ScriptedServer",
    "default_reply",
    "example_from_schema",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
