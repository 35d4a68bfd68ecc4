"""The ``kimi-cli`` teacher: Moonshot's Kimi CLI, run once per call in print mode.

Kimi CLI is a coding agent: left to its defaults it can run shell commands, edit
files and search the web, and print mode auto-approves every tool call. The
earlier tool ran it like that, so a prompt from a public dataset could run
commands on the user's machine. This teacher holds it to text only:

- an agent file of Hegelion's own with ``tools: []`` and no subagents (the CLI's
  only tool sources besides it are plugins and MCP servers in its data directory,
  and the isolated directory below has none);
- a fresh temporary HOME and ``KIMI_SHARE_DIR`` holding only the config Hegelion
  writes (provider, model, no hooks, telemetry off), an empty ``--skills-dir``,
  and a fresh, empty working directory, all removed after the call;
- the API key passed in the environment (``KIMI_API_KEY``), never on the command
  line or on disk; with no key set, your own ``kimi login``: a copy of its access
  token alone, read-only, for the length of the call, refreshed only in a short run of
  its own and written back to your file (`hegelion_kimi.login` says why and how);
- ``extra_args`` checked against an allowlist, so no flag can turn tools,
  auto-approval, MCP or another agent back on;
- a check, before the first call, that the binary is a Kimi CLI that has the
  flags this relies on; a binary that does not is refused with the reason;
- output holding a tool call is refused: with no tools there should be none.

Its completions carry no ``finish_reason``: the CLI's stream-json output does not say
why the model stopped, so a cut answer cannot be told from a finished one.

The CLI runs in its own process group with a timeout; when a call ends, times
out or is cancelled the whole group gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from hegelion_core import (
    Completion,
    DriverOptions,
    HegelionError,
    Message,
    Teacher,
    TeacherError,
    Usage,
    retryable_status,
)
from hegelion_kimi import login as kimi_login
from hegelion_kimi._common import (
    DEFAULT_BASE_URL,
    DEFAULT_KEY_ENV,
    DEFAULT_MODEL,
    optional_api_key,
    safe_text,
)
from hegelion_kimi.login import KimiLogin, Token

#: Seconds between SIGTERM and SIGKILL for the CLI's process group.
KILL_GRACE_S = 3.0
#: The CLI's exit status for "failed, worth retrying" (EX_TEMPFAIL).
EXIT_RETRYABLE = 75

#: Flags the isolation depends on; a binary whose --help lacks one is refused.
REQUIRED_FLAGS = (
    "--print",
    "--output-format",
    "--agent-file",
    "--config-file",
    "--work-dir",
    "--skills-dir",
)

#: extra_args a user may add. Anything else is refused: an allowlist cannot be
#: bypassed by a flag a future CLI adds.
ALLOWED_EXTRA_ARGS = frozenset({"--thinking", "--no-thinking", "--verbose", "--debug"})

#: Why the most tempting flags are refused, for a clearer error.
_REFUSED_WHY = {
    "--yolo": "auto-approves tool calls",
    "--yes": "auto-approves tool calls",
    "-y": "auto-approves tool calls",
    "--auto-approve": "auto-approves tool calls",
    "--afk": "auto-approves tool calls",
    "--agent": "loads an agent with tools",
    "--agent-file": "replaces Hegelion's tool-less agent",
    "--mcp-config": "adds MCP tools",
    "--mcp-config-file": "adds MCP tools",
    "--skills-dir": "adds skills",
    "--config": "replaces Hegelion's config",
    "--config-file": "replaces Hegelion's config",
    "--add-dir": "widens the workspace",
    "--work-dir": "moves it out of the empty working directory",
    "-w": "moves it out of the empty working directory",
    "--model": "use the `model` option",
    "-m": "use the `model` option",
}

# Environment variables the CLI may see: locale, certificates, proxies. Everything
# else (the user's KIMI_*/OPENAI_* settings, other keys) stays out.
_ENV_ALLOW = re.compile(
    r"^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|SSL_CERT_FILE|SSL_CERT_DIR|"
    r"REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|(HTTP|HTTPS|ALL|NO)_PROXY|(http|https|all|no)_proxy|"
    r"SYSTEMROOT)$"
)
# With use_user_config the CLI's own provider overrides from the user's shell apply too.
_USER_PROVIDER_ENV = re.compile(
    r"^(KIMI_(API_KEY|BASE_URL|MODEL_[A-Z_]+)|OPENAI_(API_KEY|BASE_URL))$"
)

_VERSION = re.compile(r"\bkimi,? version (\d+)\.(\d+)(?:\.(\d+))?")
_STATUS = re.compile(r"Error code: (\d{3})")


class KimiCLITeacher(Teacher):
    """Kimi CLI in print mode, with no tools, in a throwaway HOME and working directory."""

    name = "kimi-cli"

    class Options(DriverOptions):
        #: The CLI: a name on PATH, a path, or a command prefix such as
        #: ``["/path/to/python", "-m", "kimi_cli.cli"]`` (needed for kimi-cli 1.52,
        #: whose ``kimi`` script is a deprecation stub).
        binary: str | list[str] = "kimi"
        #: Model id sent to the API; with use_user_config, a model name from your
        #: config (default: your config's default_model).
        model: str | None = None
        #: OpenAI-compatible base URL (default Moonshot's; on your kimi login, the one
        #: it chose, else Kimi Code's); not with use_user_config.
        base_url: str | None = None
        #: Variable (or secrets.toml key) holding the API key; not the key itself.
        #: When it is set nowhere, your `kimi login` is used (Kimi Code's API).
        api_key_env: str = Field(DEFAULT_KEY_ENV, min_length=1)
        #: Seconds for one call, start to exit; then the process group is killed.
        timeout: float = Field(600.0, gt=0)
        #: Extra flags; only --thinking, --no-thinking, --verbose and --debug.
        extra_args: list[str] = Field(default_factory=list)
        #: Take providers and models (only those) from your Kimi config file.
        #: Tools, MCP, plugins, hooks and skills stay off either way.
        use_user_config: bool = False
        #: Your Kimi config file (default ``$KIMI_SHARE_DIR`` or ``~/.kimi``, ``config.toml``).
        user_config_file: Path | None = None
        #: Context window told to the CLI, which compacts history against it.
        max_context_size: int = Field(262_144, ge=1024)

        @field_validator("binary")
        @classmethod
        def _binary_not_empty(cls, value: str | list[str]) -> str | list[str]:
            parts = [value] if isinstance(value, str) else value
            if not parts or not all(isinstance(p, str) and p for p in parts):
                raise ValueError("must be a non-empty command")
            return value

        @field_validator("extra_args")
        @classmethod
        def _only_allowed_args(cls, value: list[str]) -> list[str]:
            for arg in value:
                flag = arg.split("=", 1)[0]
                if flag in ALLOWED_EXTRA_ARGS and "=" not in arg:
                    continue
                why = _REFUSED_WHY.get(flag)
                reason = f" ({why})" if why else ""
                raise ValueError(
                    f"{arg!r} is not allowed{reason}; allowed: "
                    + ", ".join(sorted(ALLOWED_EXTRA_ARGS))
                )
            return value

        @model_validator(mode="after")
        def _user_config_consistent(self) -> KimiCLITeacher.Options:
            if self.use_user_config and self.base_url is not None:
                raise ValueError("base_url comes from your Kimi config when use_user_config is on")
            return self

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if os.name != "posix":
            raise HegelionError("the kimi-cli teacher needs POSIX process groups (Linux, macOS)")
        self._key: str | None = None
        self._user_config: dict[str, Any] | None = None
        #: Your `kimi login`, when the calls use it instead of an API key.
        self._login: KimiLogin | None = None
        self._login_model: dict[str, Any] = {}
        if self.options.use_user_config:
            self._user_config = _read_user_config(self.options.user_config_file)
            if _uses_login(self._user_config, self.options.model):
                self._login = KimiLogin()
        else:
            self._key = optional_api_key(self.options.api_key_env)
            if self._key is None:
                self._login = KimiLogin()
                self._login_model = _login_model(self.options.user_config_file)
        if self._login is not None:
            self._login.read()  # a missing or dead login stops the run before its first prompt
        self._command: list[str] | None = None
        self.version: tuple[int, int, int] | None = None

    # ----- the call --------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,  # the CLI cannot constrain output
    ) -> Completion:
        command = await self._checked_command()
        system, prompt = render_prompt(messages)
        start = time.perf_counter()
        token = await self._fresh_login(command) if self._login is not None else None
        root = Path(tempfile.mkdtemp(prefix="hegelion-kimi-"))
        try:
            layout = _Layout.create(root)
            model_name = self._write_config(layout)
            layout.write_agent(system)
            if token is not None and self._login is not None:
                self._login.lend(token, layout.share, refresh=False)
            argv = [*layout.argv(command), *self.options.extra_args]
            env = self._environment(layout, max_tokens, temperature)
            result = await run_in_group(
                argv, prompt, cwd=layout.work, env=env, timeout=self.options.timeout
            )
            usage = _usage_from_sessions(layout.share)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        try:
            text = _final_text(result)
        except TeacherError as exc:
            if token is None or exc.status not in (401, 403):
                raise
            raise TeacherError(
                f"{exc}; Kimi refused your login: {kimi_login.hint()}",
                retryable=False,
                status=exc.status,
            ) from None
        # Why the model stopped is unknown: kimi-cli (1.52, on kosong 0.56) drops the API's
        # finish_reason, and its stream-json output (kosong messages: role, content,
        # tool_calls; notifications) has no field for it. None, never a made-up "stop".
        return Completion(
            text=text,
            model=model_name,
            usage=usage,
            finish_reason=None,
            latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        """Nothing to release: every call's process group is gone when it returns."""

    # ----- your kimi login -------------------------------------------------------

    async def _fresh_login(self, command: list[str]) -> Token:
        """The login's token, refreshed first when it could come due during this call."""
        assert self._login is not None
        try:
            token = self._login.read()
            call_s = self.options.timeout + KILL_GRACE_S + 60
            detail = ""
            if token.due(call_s):
                async with self._login.locked():
                    token = self._login.read()  # another call may have refreshed it
                    if token.due(call_s):
                        token, detail = await self._refresh_login(command, token)
        except HegelionError as exc:
            raise TeacherError(str(exc), retryable=False, status=401) from None
        except TimeoutError as exc:
            raise TeacherError(f"cannot refresh your Kimi login: {exc}", retryable=True) from None
        except OSError as exc:  # the lock or the write-back: the user's Kimi directory
            raise TeacherError(
                f"cannot refresh your Kimi login: {safe_text(exc)}", retryable=False
            ) from None
        if token.seconds_left() < 30:
            raise TeacherError(
                "your Kimi login has expired and kimi-cli could not refresh it"
                f"{': ' + detail if detail else ''}; {kimi_login.hint()}",
                retryable=False,
                status=401,
            )
        return token

    async def _refresh_login(self, command: list[str], token: Token) -> tuple[Token, str]:
        """Let the CLI refresh ``token`` in a run that asks the model nothing; write
        what it got back to your file. (The token after, why it failed or "".)"""
        assert self._login is not None
        root = Path(tempfile.mkdtemp(prefix="hegelion-kimi-login-"))
        try:
            layout = _Layout.create(root)
            self._write_config(layout)
            layout.write_agent("")
            self._login.lend(token, layout.share, refresh=True)
            argv = layout.argv(command)
            env = self._environment(layout, None, None)
            try:
                await run_in_group(
                    argv,
                    kimi_login.REFRESH_PROMPT,
                    cwd=layout.work,
                    env=env,
                    timeout=min(self.options.timeout, 120),
                )
            finally:  # also when cancelled or timed out: a rotated token must not be lost
                refreshed = self._login.take_back(token, layout.share)
            detail = "" if refreshed else _refresh_failure(layout.share)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return self._login.read(), detail

    # ----- pieces ----------------------------------------------------------------

    async def _checked_command(self) -> list[str]:
        """The command, once shown to be a Kimi CLI that can be held to no tools."""
        if self._command is None:
            command = resolve_command(self.options.binary)
            self.version = await check_cli(command)
            self._command = command
        return self._command

    def _write_config(self, layout: _Layout) -> str:
        """Write the CLI's config.json; return the model name the API will see."""
        config: dict[str, Any] = {
            "telemetry": False,
            "skip_afk_prompt_injection": True,
            "merge_all_available_skills": False,
            "default_yolo": False,
            # One step, one attempt: no tool loop, and retries belong to Hegelion.
            "loop_control": {"max_steps_per_turn": 1, "max_retries_per_step": 1},
        }
        if self._user_config is not None:
            providers = self._user_config.get("providers") or {}
            models = self._user_config.get("models") or {}
            alias = self.options.model or self._user_config.get("default_model") or ""
            if alias not in models:
                raise TeacherError(
                    f"model {alias!r} is not in your Kimi config's [models] "
                    f"({', '.join(sorted(models)) or 'none'})",
                    retryable=False,
                )
            config.update(providers=providers, models=models, default_model=alias)
            model_name = str(models[alias].get("model") or alias)
        elif self._login is not None:
            model_name = self.options.model or str(
                self._login_model.get("model") or kimi_login.KIMI_CODE_MODEL
            )
            config.update(
                default_model="hegelion",
                providers={
                    kimi_login.PROVIDER: {
                        "type": "kimi",
                        "base_url": self.options.base_url
                        or str(self._login_model.get("base_url") or kimi_login.KIMI_CODE_BASE_URL),
                        "api_key": "",
                        # The CLI reads the token from credentials/ in its data directory,
                        # where the call lends it (and refreshes only this provider's).
                        "oauth": {"storage": "file", "key": kimi_login.OAUTH_KEY},
                    }
                },
                models={
                    "hegelion": {
                        "provider": kimi_login.PROVIDER,
                        "model": model_name,
                        "max_context_size": self.options.max_context_size,
                    }
                },
            )
        else:
            model_name = self.options.model or DEFAULT_MODEL
            config.update(
                default_model="hegelion",
                providers={
                    "hegelion": {
                        "type": "kimi",
                        "base_url": self.options.base_url or DEFAULT_BASE_URL,
                        "api_key": "",  # from KIMI_API_KEY in the environment, never on disk
                    }
                },
                models={
                    "hegelion": {
                        "provider": "hegelion",
                        "model": model_name,
                        "max_context_size": self.options.max_context_size,
                    }
                },
            )
        _write_private(layout.config, json.dumps(config, indent=2))
        return model_name

    def _environment(
        self, layout: _Layout, max_tokens: int | None, temperature: float | None
    ) -> dict[str, str]:
        keep = (
            _ENV_ALLOW
            if self._user_config is None
            else re.compile(f"{_ENV_ALLOW.pattern}|{_USER_PROVIDER_ENV.pattern}")
        )
        env = {k: v for k, v in os.environ.items() if keep.match(k)}
        if self._login is not None:  # where the login's refresh goes, if moved
            env.update({k: os.environ[k] for k in kimi_login.OAUTH_HOST_ENV if k in os.environ})
        env.update(
            HOME=str(layout.home),
            KIMI_SHARE_DIR=str(layout.share),
            PYTHONUTF8="1",
            PYTHONIOENCODING="utf-8",
            NO_COLOR="1",
            TERM="dumb",
        )
        if self._key is not None:
            env["KIMI_API_KEY"] = self._key
        # The CLI's Kimi provider reads per-request generation settings from these.
        if max_tokens is not None:
            env["KIMI_MODEL_MAX_COMPLETION_TOKENS"] = str(max_tokens)
        if temperature is not None:
            env["KIMI_MODEL_TEMPERATURE"] = repr(float(temperature))
        return env


# ----- the temporary layout ------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """``root/home`` (HOME, with ``.kimi`` as KIMI_SHARE_DIR), ``root/conf``, ``root/work``."""

    home: Path
    share: Path
    conf: Path
    skills: Path
    work: Path

    @classmethod
    def create(cls, root: Path) -> _Layout:
        layout = cls(
            home=root / "home",
            share=root / "home" / ".kimi",
            conf=root / "conf",
            skills=root / "conf" / "skills",
            work=root / "work",
        )
        for path in (layout.share, layout.skills, layout.work):
            path.mkdir(parents=True, mode=0o700)
        return layout

    @property
    def config(self) -> Path:
        return self.conf / "config.json"

    @property
    def agent(self) -> Path:
        return self.conf / "agent.yaml"

    def argv(self, command: Sequence[str]) -> list[str]:
        """The CLI in print mode, held to this layout: Hegelion's config, its tool-less
        agent, an empty skills directory and working directory. One list for every run
        (calls and login refreshes), so no run can leave a flag of the isolation out."""
        return [
            *command,
            "--print",
            "--output-format",
            "stream-json",
            "--config-file",
            str(self.config),
            "--agent-file",
            str(self.agent),
            "--skills-dir",
            str(self.skills),
            "--work-dir",
            str(self.work),
        ]

    def write_agent(self, system: str) -> None:
        """An agent with no tools and no subagents; its system prompt is ``system``.

        The CLI renders system prompts as Jinja templates, so the text goes in as a
        template *argument*: it is substituted verbatim, never evaluated.
        """
        _write_private(self.conf / "system.md", "${HEGELION_SYSTEM}")
        _write_private(
            self.agent,
            (
                "version: 1\n"
                "agent:\n"
                "  name: hegelion-teacher\n"
                "  system_prompt_path: ./system.md\n"
                "  system_prompt_args:\n"
                f"    HEGELION_SYSTEM: {yaml_quote(system)}\n"
                "  tools: []\n"
                "  subagents: {}\n"
            ),
        )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fp:
        fp.write(text)


def yaml_quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that any YAML 1.1 loader reads back exactly."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates out
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code <= 0x7E:
            out.append(ch)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


# ----- prompts and output --------------------------------------------------------------


def render_prompt(messages: Sequence[Message]) -> tuple[str, str]:
    """(system prompt, user prompt) for one print-mode run.

    Print mode takes one user turn, so earlier turns are written out as a labelled
    transcript. A prompt that starts with ``/`` is labelled too: the CLI would
    otherwise run it as a slash command (``/init``, ``/add-dir``...).
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[-1].role != "user" or not turns[-1].content.strip():
        raise TeacherError("the conversation must end with a non-empty user turn", retryable=False)
    if len(turns) == 1 and not turns[0].content.lstrip().startswith("/"):
        return system, turns[0].content
    transcript = "\n\n".join(f"[{m.role}]\n{m.content}" for m in turns)
    return system, transcript


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


def _final_text(result: RunResult) -> str:
    """The last assistant message's text, or a `TeacherError` saying what went wrong."""
    messages: list[dict[str, Any]] = []
    other: list[str] = []
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        if isinstance(item, dict) and "role" in item:
            messages.append(item)
    used = sorted(
        {
            call.get("function", {}).get("name", "?")
            for m in messages
            for call in (m.get("tool_calls") or [])
            if isinstance(call, dict)
        }
    )
    if used or any(m.get("role") == "tool" for m in messages):
        raise TeacherError(
            f"kimi-cli's output holds tool calls ({', '.join(used) or 'tool results'}) "
            "although Hegelion gives it no tools; refusing the output",
            retryable=False,
        )
    if result.returncode != 0:
        raise _exit_error(result, other)
    for message in reversed(messages):
        if message.get("role") == "assistant":
            text = _message_text(message.get("content"))
            if text.strip():
                return text
    detail = safe_text(" ".join(other) or result.stderr or "no output", 300)
    raise TeacherError(f"kimi-cli printed no assistant message: {detail}", retryable=True)


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # parts: keep text, drop "think" (the reasoning)
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _exit_error(result: RunResult, other: list[str]) -> TeacherError:
    detail = " ".join(other).strip() or result.stderr.strip() or "no output"
    match = _STATUS.search(detail)
    status = int(match.group(1)) if match else None
    code = result.returncode
    if code == EXIT_RETRYABLE or code < 0:
        retryable = True  # the CLI's own "try again", or killed by a signal not ours
    else:
        retryable = retryable_status(status)
    return TeacherError(
        f"kimi-cli exited with status {code}: {safe_text(detail)}",
        retryable=retryable,
        status=status,
    )


def _usage_from_sessions(share: Path) -> Usage:
    """Token usage from the session's wire log (``StatusUpdate.token_usage``); 0 if absent."""
    prompt = completion = 0
    for wire in sorted(share.glob("sessions/*/*/wire.jsonl"))[:10]:
        try:
            lines = wire.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if "token_usage" not in line:
                continue
            try:
                usage = json.loads(line)["message"]["payload"]["token_usage"]
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(usage, dict):  # null while a step has no usage yet
                continue
            try:
                prompt += sum(
                    int(usage.get(k) or 0)
                    for k in ("input_other", "input_cache_read", "input_cache_creation")
                )
                completion += int(usage.get("output") or 0)
            except (ValueError, TypeError):
                continue
    return Usage(prompt_tokens=max(0, prompt), completion_tokens=max(0, completion))


# ----- the binary ----------------------------------------------------------------------


def resolve_command(binary: str | list[str]) -> list[str]:
    """The command as absolute argv, its program found on PATH now, before HOME changes."""
    parts = [binary] if isinstance(binary, str) else list(binary)
    program = shutil.which(parts[0])
    if program is None:
        raise TeacherError(
            f"kimi-cli not found: {parts[0]!r} is not an executable on PATH. Install it "
            "(`uv tool install kimi-cli`) or set the teacher's `binary` option",
            retryable=False,
        )
    return [os.path.abspath(program), *parts[1:]]


_checked: dict[tuple[str, ...], tuple[int, int, int]] = {}


async def check_cli(command: list[str]) -> tuple[int, int, int]:
    """Refuse a binary that is not a Kimi CLI able to run with no tools; its version.

    Never runs the binary without arguments: kimi-cli 1.52's ``kimi`` with no
    arguments downloads and runs an installer.
    """
    key = tuple(command)
    if key in _checked:
        return _checked[key]
    with tempfile.TemporaryDirectory(prefix="hegelion-kimi-check-") as tmp:
        env = {k: v for k, v in os.environ.items() if _ENV_ALLOW.match(k)}
        env.update(
            HOME=tmp,
            KIMI_SHARE_DIR=str(Path(tmp) / ".kimi"),
            NO_COLOR="1",
            PYTHONUTF8="1",
            COLUMNS="200",
            TERM="dumb",
        )
        version_out = await run_in_group(
            [*command, "--version"], "", cwd=Path(tmp), env=env, timeout=60
        )
        help_out = await run_in_group([*command, "--help"], "", cwd=Path(tmp), env=env, timeout=60)
    shown = " ".join(command)
    match = _VERSION.search(version_out.stdout)
    if version_out.returncode != 0 or match is None:
        raise TeacherError(
            f"{shown} does not look like Kimi CLI: `--version` printed "
            f"{safe_text(version_out.stdout or version_out.stderr, 200)!r}",
            retryable=False,
        )
    version = (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    missing = [flag for flag in REQUIRED_FLAGS if flag not in help_out.stdout]
    if missing and ("no longer maintained" in help_out.stdout or "停止维护" in help_out.stdout):
        suggestion = json.dumps([_stub_python(command), "-m", "kimi_cli.cli"])
        raise TeacherError(
            f"refusing to run {shown}: it is kimi-cli 1.52's `kimi` script, a deprecation "
            "stub that prints a notice instead of running the agent (and, run with no "
            "arguments, downloads and runs an installer). Run its CLI module instead: "
            f"binary = {suggestion}, or install kimi-cli<=1.51.",
            retryable=False,
        )
    if missing:
        raise TeacherError(
            f"refusing to run {shown}: Hegelion cannot hold it to no tools, because its "
            f"--help lacks {', '.join(missing)}.",
            retryable=False,
        )
    _checked[key] = version
    return version


def _stub_python(command: list[str]) -> str:
    """The interpreter in a console script's shebang, for the error message's hint."""
    try:
        with open(command[0], "rb") as fp:
            first = fp.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        first = ""
    return (
        first[2:].strip()
        if first.startswith("#!") and " " not in first[2:].strip()
        else "/path/to/kimi-cli/venv/bin/python"
    )


def _uses_login(user_config: dict[str, Any], model: str | None) -> bool:
    """Whether the model chosen from your Kimi config sends your `kimi login`'s token."""
    alias = model or user_config.get("default_model") or ""
    entry = (user_config.get("models") or {}).get(alias)
    provider_key = entry.get("provider") if isinstance(entry, dict) else None
    provider = (user_config.get("providers") or {}).get(provider_key)
    oauth = provider.get("oauth") if isinstance(provider, dict) else None
    if not oauth:
        return False
    key = oauth.get("key") if isinstance(oauth, dict) else None
    if key != kimi_login.OAUTH_KEY or provider_key != kimi_login.PROVIDER:
        raise HegelionError(
            f"use_user_config: provider {provider_key!r} uses OAuth key {key!r}; only the "
            f"login `kimi login` makes ({kimi_login.PROVIDER!r}, {kimi_login.OAUTH_KEY!r}) "
            "can be lent to the CLI"
        )
    return True


def _login_model(path: Path | None) -> dict[str, Any]:
    """The model and base URL `kimi login` chose in your Kimi config, if it did
    (``{"model": ..., "base_url": ...}``; empty when there is no such config)."""
    try:
        config = _read_user_config(path)
    except HegelionError:
        return {}
    models = config.get("models") or {}
    entry = models.get(config.get("default_model") or "")
    if not isinstance(entry, dict) or entry.get("provider") != kimi_login.PROVIDER:
        return {}
    provider = (config.get("providers") or {}).get(kimi_login.PROVIDER) or {}
    found = {"model": entry.get("model"), "base_url": provider.get("base_url")}
    return {k: v for k, v in found.items() if isinstance(v, str) and v}


def _refresh_failure(share: Path) -> str:
    """The CLI's last log line about refreshing, scrubbed; "" when there is none."""
    try:
        lines = (
            (share / "logs" / "kimi.log").read_text(encoding="utf-8", errors="replace").splitlines()
        )
    except OSError:
        return ""
    found = [line for line in lines if "refresh" in line.lower() and "oauth" in line.lower()]
    return safe_text(found[-1].split(" - ", 1)[-1], 300) if found else ""


def _read_user_config(path: Path | None) -> dict[str, Any]:
    """Your Kimi config's providers, models and default model (nothing else is used)."""
    if path is None:
        share = os.environ.get("KIMI_SHARE_DIR") or str(Path.home() / ".kimi")
        path = Path(share) / "config.toml"
        if not path.exists() and (Path(share) / "config.json").exists():
            path = Path(share) / "config.json"
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise HegelionError(f"use_user_config: no Kimi config at {path}") from None
    except (OSError, ValueError) as exc:
        raise HegelionError(f"use_user_config: cannot read {path}: {exc}") from None
    return {k: data[k] for k in ("providers", "models", "default_model") if k in data}


# ----- processes -----------------------------------------------------------------------


async def run_in_group(
    argv: list[str], stdin_text: str, *, cwd: Path, env: dict[str, str], timeout: float
) -> RunResult:
    """Run ``argv`` in a new process group; kill the whole group when done, on timeout
    or on cancellation, so no grandchild outlives the call.

    The call ends when the leader exits, not when its pipes close: a leftover
    grandchild holding stdout would otherwise keep the call waiting until timeout.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise TeacherError(f"cannot start {argv[0]}: {safe_text(exc)}", retryable=False) from None
    pgid = proc.pid  # start_new_session: the child leads a group with its own pid
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    tasks = [
        asyncio.ensure_future(_drain(proc.stdout, out)),
        asyncio.ensure_future(_drain(proc.stderr, err)),
        asyncio.ensure_future(_feed(proc.stdin, stdin_text.encode("utf-8"))),
    ]
    try:
        try:
            deadline = time.monotonic() + timeout
            while proc.returncode is None:  # bounded by the timeout
                if time.monotonic() >= deadline:
                    raise TeacherError(
                        f"kimi-cli did not finish within {timeout:g}s; its process group "
                        "was killed",
                        retryable=True,
                    )
                await asyncio.sleep(0.02)
        finally:
            await _end_group(proc, pgid)
            # Every process of the group is gone, so the pipes are at EOF.
            await asyncio.wait(tasks, timeout=5)
    finally:
        for task in tasks:
            task.cancel()
    code = proc.returncode if proc.returncode is not None else -1
    return RunResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(1 << 16):  # ends at EOF
        into += chunk


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the CLI exited without reading: its output says why
    finally:
        stdin.close()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process in it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed user: nothing of ours is left to stop
        return False
    return True


async def _end_group(proc: asyncio.subprocess.Process, pgid: int) -> None:
    """SIGTERM the group, wait up to KILL_GRACE_S, then SIGKILL whatever is left.

    The finishing SIGKILL sits in a ``finally``, so a second cancellation while
    waiting cannot leave the group running.
    """
    if not _signal_group(pgid, signal.SIGTERM):
        return
    gone = False
    try:
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:  # bounded by the grace period
            if proc.returncode is not None and not _signal_group(pgid, 0):
                gone = True
                return
            await asyncio.sleep(0.05)
    finally:
        if not gone:
            _signal_group(pgid, signal.SIGKILL)
    for _ in range(250):  # SIGKILL is immediate; bounded at 5 s all the same
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.02)


__all__ = [
    "KimiCLITeacher",
    "render_prompt",
    "yaml_quote",
    "run_in_group",
    "check_cli",
    "resolve_command",
    "RunResult",
]
