"""The kimi-cli teacher on the user's own ``kimi login``, with no API key.

The login is made by the real CLI (``python -m kimi_cli.cli login --json``), not
laid out by hand: kimi-cli reads its OAuth host from ``KIMI_CODE_OAUTH_HOST`` and the
Kimi Code API from ``KIMI_CODE_BASE_URL``, so its device-code flow runs offline
against `AuthServer` (a stand-in for ``auth.kimi.com``: device authorization, token,
refresh) and the scripted OpenAI-compatible server (its ``/v1/models``). What the
CLI then wrote in the user's Kimi directory (``credentials/kimi-code.json``,
``config.toml``, ``device_id``) is what the teacher works from. The token values are
canaries: every output, log, manifest and record is searched for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from hegelion_kimi.cli import KimiCLITeacher

from hegelion_core.contracts import Completion, TeacherError
from hegelion_core.errors import HegelionError
from hegelion_core.records import Message
from hegelion_core.testing.openai_server import ScriptedOpenAIServer

ASK = [Message(role="user", content="Is a hot dog a sandwich?")]
REPO = Path(__file__).resolve().parents[3]


def canary(kind: str) -> str:
    return f"kimi-{kind}-canary-{uuid.uuid4().hex}"


class AuthServer:
    """``auth.kimi.com`` on 127.0.0.1: ``/api/oauth/device_authorization`` and
    ``/api/oauth/token`` (device-code and refresh grants), as kimi-cli calls them.

    Each grant gets fresh canary tokens living ``expires_in`` seconds; ``refuse``
    answers refresh grants 401 (a revoked login); ``on_refresh`` runs before a
    refresh is answered. ``refreshes`` lists the refresh tokens it was sent.
    """

    def __init__(self, expires_in: float = 3600) -> None:
        self.expires_in = expires_in
        self.refuse = False
        self.on_refresh: Callable[[], None] | None = None
        self.issued: list[dict[str, Any]] = []
        self.refreshes: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> AuthServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def grant(self) -> dict[str, Any]:
        token = {
            "access_token": canary("access"),
            "refresh_token": canary("refresh"),
            "expires_in": self.expires_in,
            "scope": "kimi-code",
            "token_type": "Bearer",
        }
        self.issued.append(token)
        return token

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        auth = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = 404, {"error": "not_found"}
                if self.path == "/api/oauth/device_authorization":
                    status, body = (
                        200,
                        {
                            "user_code": "ABCD-EFGH",
                            "device_code": "device-1",
                            "interval": 1,
                            "verification_uri": f"{auth.url}/device",
                            "verification_uri_complete": f"{auth.url}/device?code=ABCD-EFGH",
                            "expires_in": 600,
                        },
                    )
                elif self.path == "/api/oauth/token" and form.get("grant_type") == "refresh_token":
                    auth.refreshes.append(form.get("refresh_token", ""))
                    if auth.on_refresh is not None:
                        auth.on_refresh()
                    status, body = (
                        (
                            401,
                            {
                                "error": "invalid_grant",
                                "error_description": "refresh token revoked",
                            },
                        )
                        if auth.refuse
                        else (200, auth.grant())
                    )
                elif self.path == "/api/oauth/token":
                    status, body = 200, auth.grant()  # the user approved the device at once
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


class KimiCodeAPI(ScriptedOpenAIServer):
    """The scripted server, whose ``/v1/models`` also gives ``context_length`` as
    Kimi Code's does (`kimi login` writes it into the user's config)."""

    async def _dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        if method == "GET" and target.split("?", 1)[0] == "/v1/models":
            self._record(method, "/v1/models", headers, None, False)
            models = {
                "object": "list",
                "data": [
                    {
                        "id": self.model,
                        "object": "model",
                        "context_length": 262144,
                        "supports_reasoning": True,
                    }
                ],
            }
            return await self._send_json(writer, 200, models, keep_alive=keep_alive)
        return await super()._dispatch(method, target, headers, raw, writer, keep_alive)


class Login:
    """A user's Kimi directory after ``kimi login``, and the servers behind it."""

    def __init__(self, share: Path, auth: AuthServer, api: ScriptedOpenAIServer) -> None:
        self.share, self.auth, self.api = share, auth, api
        self.file = share / "credentials" / "kimi-code.json"

    def token(self) -> dict[str, Any]:
        return json.loads(self.file.read_bytes())

    def secrets(self) -> list[str]:
        """Every token value the auth server ever issued."""
        return [t[k] for t in self.auth.issued for k in ("access_token", "refresh_token")]

    def bearers(self) -> list[str]:
        """Which issued access token (by index) each completion request carried."""
        by_hash = {
            hashlib.sha256(f"Bearer {t['access_token']}".encode()).hexdigest(): str(i)
            for i, t in enumerate(self.auth.issued)
        }
        return [
            by_hash.get(r.credential_sha256.get("authorization", ""), "other")
            for r in self.api.completion_requests
        ]


def kimi_login(
    kimi_cli: list[str], share: Path, auth: AuthServer, api: ScriptedOpenAIServer
) -> None:
    """Run the real ``kimi login`` (device flow) against the local servers."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(share.parent),
        "KIMI_SHARE_DIR": str(share),
        "KIMI_CODE_OAUTH_HOST": auth.url,
        "KIMI_CODE_BASE_URL": api.base_url,
        "BROWSER": "true",
    }  # webbrowser.open runs `true URL`: no browser, no hang
    proc = subprocess.run(
        [*kimi_cli, "login", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=share.parent,
        timeout=180,
        start_new_session=True,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and events and events[-1]["type"] == "success", (
        proc.stdout[-1000:],
        proc.stderr[-1000:],
    )


@pytest.fixture
def login_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No API key anywhere; the user's Kimi directory is ``tmp/user/.kimi``."""
    share = tmp_path / "user" / ".kimi"
    share.parent.mkdir()
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    monkeypatch.delenv("KIMI_API_KEY", raising=False)
    monkeypatch.setenv("HEGELION_CONFIG_DIR", str(tmp_path / "hegelion-config"))
    monkeypatch.setenv("KIMI_SHARE_DIR", str(share))
    return share


@pytest.fixture
def logged_in(
    login_env: Path,
    kimi_cli: list[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Login]:
    expires_in = getattr(request, "param", 3600)
    with AuthServer(expires_in) as auth, KimiCodeAPI(model="kimi-for-coding") as api:
        kimi_login(kimi_cli, login_env, auth, api)
        api.reset()
        auth.expires_in = 3600  # what a refresh grants: not due again at once
        monkeypatch.setenv("KIMI_CODE_OAUTH_HOST", auth.url)  # where refreshes go
        yield Login(login_env, auth, api)


def complete(teacher: KimiCLITeacher, messages: list[Message] = ASK) -> Completion:
    return asyncio.run(teacher.complete(messages))


def test_the_login_is_laid_out_as_kimi_login_writes_it(logged_in: Login) -> None:
    """What the rest relies on: the file, its mode and fields, and the provider."""
    assert stat.S_IMODE(logged_in.file.stat().st_mode) == 0o600
    assert set(logged_in.token()) == {
        "access_token",
        "refresh_token",
        "expires_at",
        "expires_in",
        "scope",
        "token_type",
    }
    config = (logged_in.share / "config.toml").read_text()
    assert '[providers."managed:kimi-code"]' in config and 'key = "oauth/kimi-code"' in config
    assert 'default_model = "kimi-code/kimi-for-coding"' in config
    assert "max_context_size = 262144" in config
    assert logged_in.auth.issued[0]["access_token"] not in config


@pytest.mark.parametrize("logged_in", [3600, 200], indirect=True, ids=["fresh", "coming-due"])
def test_a_dialectic_on_the_login_alone_leaves_the_token_nowhere(
    logged_in: Login, kimi_cli: list[str], tmp_path: Path
) -> None:
    """`hegelion generate` with no MOONSHOT_API_KEY: the CLI sends the login's access
    token (refreshed first when it is coming due); no output, log, manifest or record
    holds any token value, old or new."""
    before = logged_in.file.read_bytes()
    due = logged_in.token()["expires_in"] < 300
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Is a hot dog a sandwich?\n")
    out = tmp_path / "out" / "traces.jsonl"
    out.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MOONSHOT_API_KEY", "KIMI_API_KEY")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hegelion_core",
            "generate",
            "--teacher",
            "kimi-cli",
            "-t",
            f"binary={json.dumps(kimi_cli)}",
            "-t",
            "timeout=180",
            "--prompt-file",
            str(prompts),
            "-o",
            str(out),
            "--mode",
            "single",
            "--limit",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["hegelion_trace"]["thesis"] and record["hegelion_trace"]["synthesis"]
    assert record["teacher"] == "kimi-cli" and record["model"] == "kimi-for-coding"
    calls = logged_in.api.completion_requests
    assert calls and logged_in.bearers() == ["1" if due else "0"] * len(calls)
    assert all(r.body["model"] == "kimi-for-coding" for r in calls)
    assert len(logged_in.auth.refreshes) == due and (logged_in.file.read_bytes() == before) != due

    written = [p for p in tmp_path.rglob("*") if p.is_file() and logged_in.share not in p.parents]
    assert any(p.name.endswith(".manifest.json") for p in written), sorted(map(str, written))
    texts = {
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        **{str(p): p.read_text(errors="replace") for p in written},
    }
    for secret in logged_in.secrets():
        assert not [name for name, text in texts.items() if secret in text]
    assert not list(Path(tempfile.gettempdir()).glob("hegelion-kimi-*/home/.kimi/credentials/*"))


def test_each_call_gets_the_access_token_alone_and_nothing_else_of_the_user(
    logged_in: Login, tmp_path: Path, kimi_venv: Path
) -> None:
    """The copy the CLI sees: read-only, no refresh token, and beside it none of the
    user's hooks, MCP servers or plugins (control: the user's own setup has them)."""
    (logged_in.share / "mcp.json").write_text('{"mcpServers": {"evil": {"command": "false"}}}')
    (logged_in.share / "plugins").mkdir()
    config = logged_in.share / "config.toml"
    config.write_text(
        config.read_text().replace(
            "hooks = []", 'hooks = [{event = "SessionStart", command = "false"}]', 1
        )
    )
    record = tmp_path / "seen.json"
    python = kimi_venv / "bin" / "python"
    wrapper = tmp_path / "kimi-spy"
    wrapper.write_text(f"""#!{python}
import json, os, stat, sys
if "--print" in sys.argv:
    share = os.environ["KIMI_SHARE_DIR"]
    cred = os.path.join(share, "credentials", "kimi-code.json")
    data = json.load(open(cred))
    json.dump({{"files": sorted(os.path.relpath(os.path.join(d, f), share)
                               for d, _, fs in os.walk(share) for f in fs),
               "mode": stat.S_IMODE(os.stat(cred).st_mode), "refresh": data["refresh_token"],
               "env": sorted(os.environ)}}, open({str(record)!r}, "w"))
os.execv({str(python)!r}, [{str(python)!r}, "-m", "kimi_cli.cli", *sys.argv[1:]])
""")
    wrapper.chmod(0o755)
    result = complete(KimiCLITeacher(binary=str(wrapper), timeout=180))
    assert result.text and result.model == "kimi-for-coding"
    seen = json.loads(record.read_text())
    assert seen["files"] == ["credentials/kimi-code.json", "device_id"]
    assert seen["mode"] == 0o400 and seen["refresh"] == ""
    assert "KIMI_CODE_OAUTH_HOST" in seen["env"] and "KIMI_API_KEY" not in seen["env"]
    assert logged_in.bearers() == ["0"]
    assert (logged_in.share / "device_id").read_text().strip() in {
        r.headers.get("x-msh-device-id") for r in logged_in.api.completion_requests
    }


@pytest.mark.parametrize("logged_in", [200], indirect=True)  # due: under 300 s left
def test_a_login_coming_due_is_refreshed_once_and_written_back(
    logged_in: Login, kimi_cli: list[str]
) -> None:
    """Three calls at once on a token about to expire: one refresh run (no model
    request), the new token written to the user's file, every call on the new one."""
    old = logged_in.token()
    teacher = KimiCLITeacher(binary=kimi_cli, timeout=180)

    async def three() -> list[Completion]:
        return list(await asyncio.gather(*(teacher.complete(ASK) for _ in range(3))))

    results = asyncio.run(three())
    assert all(r.text for r in results)
    assert logged_in.auth.refreshes == [old["refresh_token"]]  # once, with the user's token
    new = logged_in.token()
    assert new["access_token"] == logged_in.auth.issued[1]["access_token"]
    assert new["refresh_token"] == logged_in.auth.issued[1]["refresh_token"]
    assert new["expires_at"] > old["expires_at"]
    assert stat.S_IMODE(logged_in.file.stat().st_mode) == 0o600
    assert logged_in.bearers() == ["1", "1", "1"]  # three model requests, all on the new token
    assert not list(logged_in.file.parent.glob("*.tmp"))


@pytest.mark.parametrize("logged_in", [200], indirect=True)
def test_a_login_refreshed_meanwhile_by_kimi_itself_is_not_overwritten(
    logged_in: Login, kimi_cli: list[str]
) -> None:
    """The user's own kimi rewrites the file while Hegelion's refresh is under way:
    theirs stands, and the call uses it."""
    theirs = logged_in.auth.grant() | {"expires_at": time.time() + 3600}
    theirs_raw = json.dumps(theirs).encode()
    logged_in.auth.on_refresh = lambda: logged_in.file.write_bytes(theirs_raw)
    result = complete(KimiCLITeacher(binary=kimi_cli, timeout=180))
    assert result.text and len(logged_in.auth.refreshes) == 1
    assert logged_in.file.read_bytes() == theirs_raw
    assert logged_in.bearers() == ["1"]  # the token the user's kimi wrote


@pytest.mark.parametrize("logged_in", [200], indirect=True)
def test_a_refresh_run_killed_after_refreshing_still_hands_the_new_token_back(
    logged_in: Login, kimi_venv: Path, tmp_path: Path
) -> None:
    """The refresh run outlives its timeout after the CLI rotated the token: the
    process group is killed, and the rotated token still reaches the user's file."""
    python = kimi_venv / "bin" / "python"
    wrapper = tmp_path / "kimi-slow-exit"
    wrapper.write_text(f"""#!{python}
import os, subprocess, sys, time
if "--print" not in sys.argv:
    os.execv({str(python)!r}, [{str(python)!r}, "-m", "kimi_cli.cli", *sys.argv[1:]])
prompt = sys.stdin.buffer.read()
subprocess.run([{str(python)!r}, "-m", "kimi_cli.cli", *sys.argv[1:]], input=prompt)
if prompt.startswith(b"/hegelion-refresh"):
    time.sleep(300)  # the CLI is done and has refreshed; its run never ends
""")
    wrapper.chmod(0o755)
    with pytest.raises(TeacherError) as info:
        complete(KimiCLITeacher(binary=str(wrapper), timeout=40))
    assert info.value.retryable and "did not finish within 40s" in str(info.value)
    assert len(logged_in.auth.refreshes) == 1
    assert logged_in.token()["refresh_token"] == logged_in.auth.issued[1]["refresh_token"]
    assert not logged_in.api.completion_requests


@pytest.mark.parametrize("logged_in", [1], indirect=True)  # expired a second after login
def test_an_expired_login_that_cannot_be_refreshed_says_run_kimi_login(
    logged_in: Login, kimi_cli: list[str]
) -> None:
    time.sleep(1.5)
    before = logged_in.file.read_bytes()
    logged_in.auth.refuse = True
    teacher = KimiCLITeacher(binary=kimi_cli, timeout=180)
    with pytest.raises(TeacherError) as info:
        complete(teacher)
    error = info.value
    assert not error.retryable and error.status == 401 and error.blame == "auth"
    assert "expired" in str(error) and "kimi login" in str(error)
    assert "MOONSHOT_API_KEY" in str(error)
    assert "refresh token revoked" in str(error)  # the CLI's reason, from its log
    assert not logged_in.api.completion_requests and logged_in.file.read_bytes() == before
    assert not [s for s in logged_in.secrets() if s in str(error)]


def test_a_login_the_api_refuses_says_run_kimi_login(logged_in: Login, kimi_cli: list[str]) -> None:
    logged_in.api.enqueue(("status", 401), ("status", 401))  # the CLI retries a 401 once
    with pytest.raises(TeacherError) as info:
        complete(KimiCLITeacher(binary=kimi_cli, timeout=180))
    error = info.value
    assert not error.retryable and error.status == 401
    assert "Kimi refused your login" in str(error) and "kimi login" in str(error)


def test_the_users_config_with_the_login_works_too(logged_in: Login, kimi_cli: list[str]) -> None:
    """use_user_config: the provider `kimi login` wrote, with the token lent alike."""
    result = complete(KimiCLITeacher(binary=kimi_cli, use_user_config=True, timeout=180))
    assert result.text and result.model == "kimi-for-coding"
    assert logged_in.bearers() == ["0"]


def test_no_key_and_no_login_is_a_clear_error(login_env: Path) -> None:
    with pytest.raises(HegelionError) as info:
        KimiCLITeacher(binary="true")
    message = str(info.value)
    assert str(login_env / "credentials" / "kimi-code.json") in message
    assert "kimi login" in message and "MOONSHOT_API_KEY" in message


def test_an_expired_login_without_a_refresh_token_is_a_clear_error(login_env: Path) -> None:
    (login_env / "credentials").mkdir(parents=True)
    (login_env / "credentials" / "kimi-code.json").write_text(
        json.dumps(
            {
                "access_token": canary("access"),
                "refresh_token": "",
                "expires_at": time.time() - 5,
                "scope": "kimi-code",
                "token_type": "Bearer",
                "expires_in": 3600,
            }
        )
    )
    with pytest.raises(HegelionError, match="has expired and cannot be refreshed.*kimi login"):
        KimiCLITeacher(binary="true")


def test_a_garbled_login_names_the_file_and_shows_no_value(login_env: Path) -> None:
    (login_env / "credentials").mkdir(parents=True)
    secret = canary("refresh")
    (login_env / "credentials" / "kimi-code.json").write_text(json.dumps({"refresh_token": secret}))
    with pytest.raises(HegelionError) as info:
        KimiCLITeacher(binary="true")
    assert "kimi-code.json: not a Kimi login (no access_token)" in str(info.value)
    assert secret not in str(info.value)


def test_an_api_key_still_wins_over_the_login(
    logged_in: Login, kimi_cli: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-hegelion-kimi-test-login-wins-00"
    monkeypatch.setenv("MOONSHOT_API_KEY", key)
    complete(KimiCLITeacher(binary=kimi_cli, base_url=logged_in.api.base_url, timeout=180))
    (request,) = logged_in.api.completion_requests
    assert request.sent_bearer(key)
