"""The key these tests use. A module of its own, not conftest: a name imported from
`conftest` is whichever plugin's conftest pytest loaded last when plugins run together."""

#: Never a real key; long enough for `hegelion_core.secrets.scrub` to hide it.
TEST_KEY = "sk-hegelion-kimi-test-7f3a9c2e51"
