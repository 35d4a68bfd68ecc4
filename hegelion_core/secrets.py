"""API keys: from the environment or a config file, and never anywhere else.

Keys are read by name (``OPENAI_API_KEY``...) from the environment first, then from
``secrets.toml`` in the Hegelion config directory (``$HEGELION_CONFIG_DIR``, else
``~/.config/hegelion``)::

    OPENAI_API_KEY = "sk-..."
    MOONSHOT_API_KEY = "..."

This module is the one filter for everything Hegelion writes or prints. It knows the
key values in use (every key `get_secret` handed out, and every value `learn` found
under a credential name or in a URL's password) and masks them wherever they appear,
not only under key-like names:

- `scrub`: a text with every known key and every URL password replaced by ``***``;
- `redact`: a copy of options or a config (nested dicts and lists), credentials masked;
- `mask_argv`: a command line fit for logs and ``stage.json``;
- `seal_argv` / `unseal_argv`: a command line for a child process with its secrets
  moved to the child's environment, so they never show in ``ps``.

Credential names are matched by their last word, exactly: ``api_key``, ``hf_token``,
``password`` and ``Authorization`` are credentials; ``max_tokens``, ``api_key_env``,
``pad_token`` and ``sort_key`` are not.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MASK = "***"
#: A known value shorter than this is not replaced in free text (it would mask words).
MIN_SCRUB_LEN = 6
#: The environment variables `seal_argv` hands a child its secrets in.
SEALED_PREFIX = "HEGELION_SECRET_"

_known: set[str] = set()
#: The known values long enough to scrub, longest first (a key inside a key).
_scrubbable: list[str] = []

#: Last words that always name a credential.
_CREDENTIAL_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "authorization",
        "auth",
        "credential",
        "credentials",
        "cookie",
        "bearer",
    }
)
#: ``<word>_token`` that is a tokenizer's token, not a credential.
_TOKENIZER_WORDS = frozenset(
    {
        "eos",
        "bos",
        "pad",
        "unk",
        "sep",
        "cls",
        "mask",
        "stop",
        "start",
        "end",
        "eot",
        "special",
        "image",
        "audio",
        "video",
        "think",
        "im",
        "chat",
        "separator",
    }
)
#: ``<word>_key`` that names a field or an ordering, not a credential.
_FIELD_WORDS = frozenset(
    {
        "sort",
        "cache",
        "dedupe",
        "group",
        "join",
        "prompt",
        "column",
        "primary",
        "partition",
        "hash",
        "lookup",
        "text",
        "label",
        "message",
        "field",
        "dict",
        "row",
        "record",
        "id",
        "index",
        "output",
        "input",
        "metric",
        "seed",
        "split",
        "answer",
        "question",
        "image",
    }
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
#: ``scheme://user:PASSWORD@host``: the password group.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^/\s@]+)(?=@)")
_SEALED = re.compile(r"\$\{(" + SEALED_PREFIX + r"\d+)\}")


def config_dir() -> Path:
    return Path(os.environ.get("HEGELION_CONFIG_DIR") or Path.home() / ".config" / "hegelion")


def get_secret(name: str) -> str | None:
    """The value of key ``name``, or None when it is set nowhere."""
    value = os.environ.get(name)
    if not value:
        path = config_dir() / "secrets.toml"
        if path.is_file():
            with path.open("rb") as fp:
                value = tomllib.load(fp).get(name)
    if value:
        remember(str(value))
        return str(value)
    return None


def require_secret(name: str, what: str) -> str:
    from hegelion_core.errors import HegelionError

    value = get_secret(name)
    if not value:
        raise HegelionError(
            f"{what} needs {name}: export {name}=... or add it to {config_dir() / 'secrets.toml'}"
        )
    return value


# ----- what is a secret ---------------------------------------------------------------


def is_credential_name(name: str) -> bool:
    """Whether an option, header or field called ``name`` holds a credential: its last
    word (``api_key`` -> key, ``hfToken`` -> token) names one, exactly."""
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words or words[-1] not in _CREDENTIAL_WORDS:
        return False
    before = words[-2] if len(words) > 1 else ""
    if words[-1] == "token":
        return before not in _TOKENIZER_WORDS
    if words[-1] == "key":
        return before not in _FIELD_WORDS
    return True


def remember(value: str) -> None:
    """Treat ``value`` as a key from now on: every `scrub` in this process masks it."""
    value = str(value)
    if value and value != MASK and value not in _known and not _SEALED.fullmatch(value):
        _known.add(value)
        _scrubbable[:] = sorted(
            (v for v in _known if len(v) >= MIN_SCRUB_LEN), key=len, reverse=True
        )


def known() -> bool:
    """Whether any key long enough to scrub is known."""
    return bool(_scrubbable)


def learn(value: Any, name: str = "") -> None:
    """Remember every credential in ``value``: strings under credential names, and URL
    passwords, in nested dicts, lists and JSON text."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            learn(item, str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            learn(item, name)
    elif isinstance(value, str):
        if name and is_credential_name(name) and _plausible_key(value):
            remember(value)
        for match in _URL_PASSWORD.finditer(value):
            remember(match.group("pw"))
        parsed = _json_container(value)
        if parsed is not None:
            learn(parsed, name)


def _plausible_key(value: str) -> bool:
    """Whether a value found under a credential name is worth masking in all free text:
    a word (``auth: none``, ``key: instruction``) would mask that word everywhere."""
    return len(value) >= 8 and not value.isalpha() and value != MASK


# ----- masking --------------------------------------------------------------------------


def scrub(text: str) -> str:
    """``text`` with every known key and every URL password replaced by ``***``."""
    return scrub_counted(text, urls=True)[0]


def scrub_counted(text: str, *, urls: bool = False) -> tuple[str, int]:
    """``text`` without the known keys (and URL passwords with ``urls``), and how many
    were replaced. Record text uses ``urls=False``: a URL in an answer is data."""
    n = 0
    for value in _scrubbable:
        if value in text:
            n += text.count(value)
            text = text.replace(value, MASK)
    if urls and "://" in text:
        text, m = _URL_PASSWORD.subn(
            lambda g: g.group("head") + MASK if g.group("pw") != MASK else g.group(0), text
        )
        n += m
    return text, n


def redact(value: Any) -> Any:
    """A copy of ``value`` (options, a config, hook arguments) fit to write or show:
    values under credential names are ``***``, and every known key and URL password is
    masked in every other string too (after learning the ones ``value`` holds)."""
    learn(value)
    return _walk(value, "", lambda _: MASK)


def mask_argv(argv: list[str]) -> list[str]:
    """A command line fit for logs and ``stage.json``: ``api_key=***``,
    ``--hf-token ***``, ``extra_body={"api_key": "***"}``, ``https://u:***@host``."""
    learn_argv(argv)
    return _argv(argv, lambda _: MASK)


def learn_argv(argv: list[str]) -> None:
    """Remember the credentials a command line holds (see `mask_argv` for the forms)."""

    def keep(value: str) -> str:
        remember(value)
        return value

    _argv(argv, keep)


def seal_argv(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """``argv`` with each secret replaced by ``${HEGELION_SECRET_<n>}``, and the
    environment variables that hold them: a child started with both (and run through
    `unseal_argv`) sees the same command line, while ``ps`` and ``/proc/PID/cmdline``
    show only the references."""
    learn_argv(argv)
    env: dict[str, str] = {}
    refs: dict[str, str] = {}

    def seal(value: str) -> str:
        if value not in refs:
            name = f"{SEALED_PREFIX}{len(refs)}"
            refs[value] = name
            env[name] = value
        return "${" + refs[value] + "}"

    return _argv(argv, seal), env


def unseal_argv(argv: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The command line `seal_argv` sealed, its references replaced by the values from
    the environment (and remembered, so this process masks them too). A reference whose
    variable is not set is left as it is. Read from ``os.environ``, the variables are
    removed from it: this process's own children do not inherit them."""
    own = environ is None
    environ = os.environ if environ is None else environ
    used: set[str] = set()

    def value(match: re.Match[str]) -> str:
        found = environ.get(match.group(1))
        if found is None:
            return match.group(0)
        used.add(match.group(1))
        remember(found)
        return found

    out = [_SEALED.sub(value, a) if "${" + SEALED_PREFIX in a else a for a in argv]
    if own:
        for name in used:
            os.environ.pop(name, None)
    return out


# ----- the walks ------------------------------------------------------------------------


def _json_container(text: str) -> Any:
    """``text`` parsed when it is a JSON object or array, else None."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None


def _walk(value: Any, name: str, hide: Callable[[str], str]) -> Any:
    """``value`` with credential-named values passed through ``hide`` and known keys /
    URL passwords inside other strings too."""
    if isinstance(value, Mapping):
        return {k: _walk(v, str(k), hide) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, name, hide) for v in value]
    if name and is_credential_name(name):
        if isinstance(value, str) and value and not _SEALED.fullmatch(value):
            return hide(value)
        return value
    if isinstance(value, str):
        return _hide_in(value, hide)
    return value


def _hide_in(text: str, hide: Callable[[str], str]) -> str:
    """Known keys and URL passwords inside free ``text`` through ``hide``; a JSON
    object or array in ``text`` is walked as a structure."""
    parsed = _json_container(text)
    if parsed is not None:  # a secret goes back into JSON text escaped, as it came
        walked = _walk(parsed, "", lambda v: hide(json.dumps(v, ensure_ascii=False)[1:-1]))
        return text if walked == parsed else json.dumps(walked, ensure_ascii=False)
    for value in _scrubbable:
        if value in text:
            text = text.replace(value, hide(value))
    if "://" in text:
        text = _URL_PASSWORD.sub(
            lambda g: (
                g.group(0)
                if g.group("pw") == MASK or _SEALED.fullmatch(g.group("pw"))
                else g.group("head") + hide(g.group("pw"))
            ),
            text,
        )
    return text


def _argv(argv: list[str], hide: Callable[[str], str]) -> list[str]:
    """Each item of a command line with its secrets through ``hide``: the value of a
    ``--credential-flag VALUE`` / ``--credential-flag=VALUE`` / ``credential=VALUE`` item,
    credentials in JSON values, URL passwords and known keys anywhere."""
    out: list[str] = []
    secret_next = False
    for item in argv:
        if secret_next:
            secret_next = False
            out.append(hide(item) if item and not _SEALED.fullmatch(item) else item)
            continue
        if item.startswith("--") and "=" not in item:
            secret_next = is_credential_name(item[2:])
            out.append(item)
            continue
        name, sep, value = item.partition("=")
        if sep and name and is_credential_name(name.lstrip("-")):
            out.append(f"{name}={hide(value) if value and not _SEALED.fullmatch(value) else value}")
        elif sep and name and " " not in name:
            out.append(f"{name}={_hide_in(value, hide)}")
        else:
            out.append(_hide_in(item, hide))
    return out
