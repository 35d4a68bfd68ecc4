"""A scripted batch service: OpenAI's Batch API and Anthropic's Message Batches, locally.

Hegelion's batch mode must be tested against the providers' real endpoints through
their official SDKs (never mocked), and the cases that matter (a job that stays in
progress, a partial failure, a cut answer, an expired job, a cancel, a job too large,
a server restarted mid-job) are exactly what a real provider will not produce on
demand. This server produces them from a script::

    from hegelion_core.testing.batch_server import BatchScript, BatchServer

    with BatchServer(state_dir=tmp / "state", script=BatchScript(polls=2)) as srv:
        openai.OpenAI(base_url=srv.openai_base_url, api_key="k")
        anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="k")
        srv.submission_counts()      # Counter: custom_id -> batches it was submitted in

Routes (as the SDKs call them):

- OpenAI: ``POST /v1/files`` (multipart), ``GET /v1/files`` (``purpose``, ``order``,
  ``after``, ``limit``), ``GET``/``DELETE /v1/files/{id}``, ``GET
  /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET
  /v1/batches`` (``after``, ``limit``), ``POST /v1/batches/{id}/cancel``; only the
  ``/v1/chat/completions`` endpoint is run.
- Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``, ``GET
  /v1/messages/batches`` (``after_id``, ``before_id``, ``limit``), ``GET
  /v1/messages/batches/{id}/results``, ``POST /v1/messages/batches/{id}/cancel``.
- Everything `ScriptedServer` serves (live completions, with its fault script) too.

Time is counted in polls: only a retrieve (``GET`` of one batch; the Anthropic SDK's
``results()`` makes one too) moves a job on, so a test needs no sleeps. After creation
(OpenAI ``validating``, Anthropic ``in_progress``) a job answers ``script.polls``
retrieves as not finished (OpenAI: ``in_progress``, the last of them ``finalizing``
when ``polls`` >= 2), then ends; ``script.seconds`` ends it by the clock instead,
whichever comes first. A job that is not finished has done a share of its requests in
order (polls seen / ``polls + 1``); a cancel (``cancelling``/``canceling``, ended at the
next retrieve) keeps those answers and cancels the rest. The script a job follows is
taken when it is created and stored with it, so a restart does not change what it does.

Each request's answer comes from the reply function (`default_reply`: a valid trace,
or JSON fitting a requested schema; ``reply=`` another), called with a
`RecordedRequest` of the live endpoint's path and the request's body, cut at
``max_tokens`` as a model's would be, with ``finish_reason``/``stop_reason`` and usage,
exactly as the live endpoints answer it. Results come back in a stable order that is
not the input's, as neither provider keeps it: clients must match on custom_id.
The script's faults pick custom_ids, by name or by a stable hash-chosen fraction:
``fail`` (an error result: OpenAI's error file with ``status_code`` 500, Anthropic's
``errored``), ``cut`` (an answer cut short: ``length``/``max_tokens``), ``expire`` (the
job ends ``expired`` with those requests unfinished: OpenAI's ``batch_expired`` error
lines, Anthropic's ``expired`` results). A chosen custom_id is faulted on its first
``attempts`` submissions only, so a retry in a later batch succeeds. OpenAI's
``request_counts`` count the requests answered (``completed``) and errored
(``failed``); expired and cancelled ones are in ``total`` only.

Limits answer as the providers do: an OpenAI batch file over ``max_file_bytes`` is
refused on upload (400 ``File is too large.``), one of more than ``max_requests`` lines
fails validation (``too_many_tasks``, as do invalid lines, duplicate custom_ids, a
``url`` or ``model`` mismatch); an Anthropic create over ``max_body_bytes`` gets 413
``request_too_large`` and one over ``max_requests`` (or with a bad or repeated
custom_id) 400 ``invalid_request_error``. With ``api_key`` a wrong key gets 401.

With ``state_dir`` every file, job and its progress is written through to disk
(atomic replaces), so a new instance (or process) on the same directory knows and
finishes the jobs of the last. The submission log (`submissions`, and
``submissions.jsonl`` in ``state_dir``) holds one line per custom_id per batch created,
so "no request is submitted twice" is checkable. As a process::

    python -m hegelion_core.testing.batch_server --port 8000 --state-dir DIR --polls 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import email.parser
import email.policy
import hashlib
import importlib
import json
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from hegelion_core.testing.scripted_server import (
    _LOOPBACK,
    Action,
    RecordedRequest,
    ReplyFn,
    ScriptedServer,
    _anthropic_answer,
    _count_words,
    _cut_words,
    _openai_answer,
)

__all__ = ["BatchScript", "BatchServer", "Submission", "main"]

#: The providers' own limits (OpenAI: 50,000 requests and 200 MB per batch file;
#: Anthropic: 100,000 requests or 256 MB per batch).
OPENAI_MAX_REQUESTS = 50_000
OPENAI_MAX_FILE_BYTES = 200 * 1024 * 1024
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BODY_BYTES = 256 * 1024 * 1024

_DAY = 24 * 3600
_FAULTS = ("expire", "fail", "cut")
_ANTHROPIC_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class BatchScript:
    """What the jobs created while this script is set will do (see the module doc)."""

    polls: int = 1
    seconds: float | None = None
    fail: Collection[str] = frozenset()
    fail_fraction: float = 0.0
    cut: Collection[str] = frozenset()
    cut_fraction: float = 0.0
    expire: Collection[str] = frozenset()
    expire_fraction: float = 0.0
    attempts: int = 1

    def __post_init__(self) -> None:
        for kind in _FAULTS:
            ids = getattr(self, kind)
            if isinstance(ids, str):
                raise TypeError(f"{kind}: give a collection of custom_ids, not the string {ids!r}")
            object.__setattr__(self, kind, frozenset(ids))
            fraction = getattr(self, f"{kind}_fraction")
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"{kind}_fraction must be in [0, 1], not {fraction!r}")
        if self.polls < 0 or self.attempts < 0:
            raise ValueError("polls and attempts must be >= 0")

    def fault(self, custom_id: str, earlier_submissions: int) -> str | None:
        """The fault for a request submitted ``earlier_submissions`` times before, if any."""
        if earlier_submissions >= self.attempts:
            return None
        for kind in _FAULTS:
            if custom_id in getattr(self, kind) or _chosen(
                kind, custom_id, getattr(self, f"{kind}_fraction")
            ):
                return kind
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchScript:
        return cls(**data)


def _chosen(kind: str, custom_id: str, fraction: float) -> bool:
    """A stable choice of about ``fraction`` of all custom_ids, different per fault."""
    if fraction <= 0.0:
        return False
    digest = hashlib.sha256(f"{kind}:{custom_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class Submission:
    """One custom_id in one created batch (a line of ``submissions.jsonl``)."""

    api: str
    batch_id: str
    custom_id: str
    at: float


class _HTTPError(Exception):
    """An error answer: status, the API's error JSON and extra headers."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> _HTTPError:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return _HTTPError(
        status, {"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def _anthropic_error(status: int, kind: str, message: str) -> _HTTPError:
    return _HTTPError(
        status,
        {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        },
    )


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _int(ts: float | None) -> int | None:
    return None if ts is None else int(ts)


def _random_id(prefix: str, n: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:n]


# ----- storage ---------------------------------------------------------------------


class _Store:
    """Files and jobs in memory, written through to ``state_dir`` when there is one."""

    def __init__(self, state_dir: Path | None) -> None:
        self.dir = state_dir
        self.files: dict[str, dict[str, Any]] = {}  # oldest first
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submissions: list[Submission] = []
        self.counts: Counter[tuple[str, str]] = Counter()  # (api, custom_id) -> submissions
        self.file_seq = 0
        if state_dir is None:
            return
        for sub in ("files", "jobs"):
            (state_dir / sub).mkdir(parents=True, exist_ok=True)
        metas = [json.loads(m.read_text()) for m in (state_dir / "files").glob("*.json")]
        for meta in sorted(metas, key=lambda m: int(m["seq"])):
            info = meta["file"]
            self.files[info["id"]] = info
            self.contents[info["id"]] = (state_dir / "files" / info["id"]).read_bytes()
        self.file_seq = max((int(m["seq"]) for m in metas), default=0)
        for path in sorted((state_dir / "jobs").glob("*.json")):
            job = json.loads(path.read_text())
            self.jobs[job["id"]] = job
        log = state_dir / "submissions.jsonl"
        if log.exists():
            text = log.read_text()
            for line in text.splitlines():
                with contextlib.suppress(ValueError, TypeError):  # a torn last line
                    self.submissions.append(Submission(**json.loads(line)))
            if text and not text.endswith("\n"):  # the next line must not join a torn one
                with open(log, "a") as fh:
                    fh.write("\n")
        self.counts.update((s.api, s.custom_id) for s in self.submissions)

    def add_file(self, info: dict[str, Any], content: bytes) -> None:
        self.file_seq += 1
        if self.dir is not None:  # the content first: a file exists once its meta does
            _write_atomic(self.dir / "files" / info["id"], content)
            meta = {"seq": self.file_seq, "file": info}
            _write_atomic(self.dir / "files" / f"{info['id']}.json", json.dumps(meta).encode())
        self.files[info["id"]] = info
        self.contents[info["id"]] = content

    def delete_file(self, file_id: str) -> None:
        if self.dir is not None:
            (self.dir / "files" / f"{file_id}.json").unlink(missing_ok=True)
            (self.dir / "files" / file_id).unlink(missing_ok=True)
        del self.files[file_id], self.contents[file_id]

    def save_job(self, job: dict[str, Any]) -> None:
        if self.dir is not None:
            _write_atomic(self.dir / "jobs" / f"{job['id']}.json", json.dumps(job).encode())
        self.jobs[job["id"]] = job

    def log_submissions(self, items: list[Submission]) -> None:
        if self.dir is not None and items:
            data = "".join(json.dumps(asdict(s)) + "\n" for s in items).encode()
            fd = os.open(self.dir / "submissions.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        self.submissions.extend(items)
        self.counts.update((s.api, s.custom_id) for s in items)


def _write_atomic(path: Path, data: bytes) -> None:
    """The state files, through the project's one atomic writer (a killed server
    leaves the old file whole, and its temporary is cleaned up by the next write)."""
    from hegelion_core.data.jsonl import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


# ----- multipart ---------------------------------------------------------------------


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


# ----- OpenAI: files and batches ---------------------------------------------------


class _OpenAIRoutes:
    """The OpenAI Files and Batch API routes of `BatchServer` (called under its lock)."""

    _store: _Store
    max_requests: int | None
    max_file_bytes: int
    completion_windows: tuple[str, ...]
    model: str

    if TYPE_CHECKING:  # BatchServer's

        def _new_job(
            self, api: str, batch_id: str, requests: list[dict[str, Any]]
        ) -> dict[str, Any]: ...

        def _advance(self, job: dict[str, Any]) -> None: ...

    def _openai(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
    ) -> tuple[int, str, bytes]:
        parts = path.strip("/").split("/")[1:]  # without "v1"
        if parts == ["files"] and method == "POST":
            return _json(self._upload(headers.get("content-type", ""), raw))
        if parts == ["files"] and method == "GET":
            return _json(self._list_files(params))
        if len(parts) == 2 and parts[0] == "files" and method == "GET":
            return _json(self._file(parts[1]))
        if len(parts) == 2 and parts[0] == "files" and method == "DELETE":
            self._file(parts[1])
            self._store.delete_file(parts[1])
            return _json({"id": parts[1], "object": "file", "deleted": True})
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and method == "GET":
            self._file(parts[1])
            return 200, "application/octet-stream", self._store.contents[parts[1]]
        if parts == ["batches"] and method == "POST":
            return _json(self._create_batch(_json_body(raw)))
        if parts == ["batches"] and method == "GET":
            return _json(self._list_batches(params))
        if len(parts) == 2 and parts[0] == "batches" and method == "GET":
            job = self._batch(parts[1])
            self._advance(job)
            self._store.save_job(job)
            return _json(self._batch_json(job))
        if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel" and method == "POST":
            return _json(self._cancel_batch(self._batch(parts[1])))
        raise _openai_error(404, f"Invalid URL ({method} {path})")

    def _upload(self, content_type: str, raw: bytes) -> dict[str, Any]:
        if not content_type.startswith("multipart/form-data"):
            raise _openai_error(400, "The request must be multipart/form-data.", "file")
        fields = _multipart(content_type, raw)
        purpose = fields.get("purpose", (None, b""))[1].decode(errors="replace")
        if "file" not in fields:
            raise _openai_error(400, "Missing required parameter: 'file'.", "file")
        if not purpose:
            raise _openai_error(400, "Missing required parameter: 'purpose'.", "purpose")
        filename, content = fields["file"]
        if purpose == "batch" and len(content) > self.max_file_bytes:
            raise _openai_error(400, "File is too large.")
        return self._add_file(filename or "upload.jsonl", purpose, content)

    def _add_file(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        now = int(time.time())
        info = {
            "id": _random_id("file-", 22),
            "object": "file",
            "bytes": len(content),
            "created_at": now,
            "expires_at": now + 30 * _DAY if purpose.startswith("batch") else None,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        self._store.add_file(info, content)
        return info

    def _list_files(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            limit = int(params.get("limit", "10000"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 10000:
            raise _openai_error(400, "limit must be between 1 and 10000.", "limit")
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _openai_error(400, "order must be 'asc' or 'desc'.", "order")
        files = [
            f for f in self._store.files.values() if params.get("purpose") in (None, f["purpose"])
        ]
        if order == "desc":
            files.reverse()
        return _page(files, params.get("after"), limit)

    def _file(self, file_id: str) -> dict[str, Any]:
        if file_id not in self._store.files:
            raise _openai_error(404, f"No such File object: {file_id}", "id")
        return self._store.files[file_id]

    def _batch(self, batch_id: str) -> dict[str, Any]:
        job = self._store.jobs.get(batch_id)
        if job is None or job["api"] != "openai":
            raise _openai_error(404, f"No batch found with id '{batch_id}'.", "batch_id")
        return job

    def _create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise _openai_error(400, f"Missing required parameter: '{name}'.", name)
        if body["completion_window"] not in self.completion_windows:
            supported = ", ".join(f"'{w}'" for w in self.completion_windows)
            raise _openai_error(
                400,
                f"Invalid value for 'completion_window': '{body['completion_window']}'. "
                f"Supported values are: {supported}.",
                "completion_window",
            )
        if body["endpoint"] != "/v1/chat/completions":
            raise _openai_error(
                400,
                f"Invalid value for 'endpoint': '{body['endpoint']}'. This scripted server "
                "runs '/v1/chat/completions' only.",
                "endpoint",
            )
        metadata = body.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16):
            raise _openai_error(400, "metadata: at most 16 string pairs.", "metadata")
        file_id = body["input_file_id"]
        info = self._store.files.get(file_id)
        if info is None:
            raise _openai_error(
                400, f"Cannot find file {file_id}, or you do not have access to it.", "file_id"
            )
        if info["purpose"] != "batch":
            raise _openai_error(
                400, f"File {file_id} has purpose '{info['purpose']}', not 'batch'.", "file_id"
            )
        requests, errors = self._read_input(self._store.contents[file_id], body["endpoint"])
        batch_id = _random_id("batch_", 32)
        if errors:  # the job fails validation: nothing runs, nothing is submitted
            requests = []
        job = self._new_job("openai", batch_id, requests)
        job.update(
            input_file_id=file_id,
            endpoint=body["endpoint"],
            completion_window=body["completion_window"],
            metadata=metadata,
            errors=errors,
            model=next((r["body"].get("model") for r in requests), None),
        )
        if errors:
            job["state"] = "failed"
        self._store.save_job(job)
        return self._batch_json(job)

    def _read_input(
        self, content: bytes, endpoint: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The requests of a batch input file, or the validation errors OpenAI reports."""

        def error(
            code: str, message: str, line: int | None = None, param: str | None = None
        ) -> list[dict[str, Any]]:
            return [{"code": code, "message": message, "param": param, "line": line}]

        lines = [
            (n, text) for n, text in enumerate(content.decode("utf-8", "replace").split("\n"), 1)
        ]
        lines = [(n, text) for n, text in lines if text.strip()]
        if not lines:
            return [], error("empty_file", "The batch input file is empty.")
        limit = self.max_requests if self.max_requests is not None else OPENAI_MAX_REQUESTS
        if len(lines) > limit:
            return [], error(
                "too_many_tasks",
                f"The batch input file has {len(lines)} requests; the limit is {limit}.",
            )
        requests: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        for number, text in lines:
            try:
                line = json.loads(text)
            except ValueError:
                return [], error(
                    "invalid_json_line", "This line is not parseable as valid JSON.", number
                )
            if not isinstance(line, dict):
                return [], error("invalid_json_line", "This line is not a JSON object.", number)
            for name, kind in (("custom_id", str), ("method", str), ("url", str), ("body", dict)):
                if not isinstance(line.get(name), kind):
                    return [], error(
                        "invalid_request", f"Missing required parameter: '{name}'.", number, name
                    )
            if line["method"] != "POST":
                return [], error(
                    "invalid_request", "Only the POST method is supported.", number, "method"
                )
            if line["url"] != endpoint:
                return [], error(
                    "url_mismatch",
                    f"The URL provided for this request ('{line['url']}') does not match the "
                    f"batch's endpoint ('{endpoint}').",
                    number,
                    "url",
                )
            if line["custom_id"] in seen:
                return [], error(
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. The "
                    "custom_id parameter must be unique for each individual request in a batch.",
                    number,
                    "custom_id",
                )
            seen.add(line["custom_id"])
            models.add(str(line["body"].get("model")))
            if len(models) > 1:
                return [], error(
                    "model_mismatch",
                    "All requests in a batch must use the same model.",
                    number,
                    "body.model",
                )
            requests.append({"custom_id": line["custom_id"], "body": line["body"]})
        return requests, []

    def _list_batches(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            limit = int(params.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise _openai_error(400, "limit must be between 1 and 100.", "limit")
        jobs = sorted(
            (j for j in self._store.jobs.values() if j["api"] == "openai"),
            key=lambda j: -int(j["seq"]),
        )
        return _page([self._batch_json(j) for j in jobs], params.get("after"), limit)

    def _cancel_batch(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["state"] != "running":
            status = self._batch_json(job)["status"]
            raise _openai_error(409, f"Cannot cancel a batch with status '{status}'.")
        job.update(state="cancelling", cancel_at=time.time())
        self._store.save_job(job)
        return self._batch_json(job)

    def _openai_files(self, job: dict[str, Any]) -> None:
        """The output and error files of an ended job (each only when it has lines)."""
        out: list[dict[str, Any]] = []
        err: list[dict[str, Any]] = []
        for result in job["results"]:
            line: dict[str, Any] = {
                "id": _random_id("batch_req_", 32),
                "custom_id": result["custom_id"],
                "response": None,
                "error": None,
            }
            kind = result["kind"]
            if kind in ("expired", "cancelled"):
                code = "batch_expired" if kind == "expired" else "batch_cancelled"
                message = (
                    "This request could not be executed before the completion window expired."
                    if kind == "expired"
                    else "This request was not executed because the batch was cancelled."
                )
                line["error"] = {"code": code, "message": message}
                err.append(line)
                continue
            body = (
                result["body"]
                if kind == "ok"
                else _openai_error(result["status"], result["message"]).body
            )
            line["response"] = {
                "status_code": result["status"],
                "request_id": uuid.uuid4().hex,
                "body": body,
            }
            (out if kind == "ok" else err).append(line)
        for name, lines in (("output", out), ("error", err)):
            if lines:
                data = "".join(json.dumps(x) + "\n" for x in lines).encode()
                info = self._add_file(f"batch_{job['id']}_{name}.jsonl", "batch_output", data)
                job[f"{name}_file_id"] = info["id"]

    def _batch_json(self, job: dict[str, Any]) -> dict[str, Any]:
        """The ``Batch`` object the API answers for a job now."""
        state, end = job["state"], job["end"]
        if state in ("failed", "failed_reported"):
            status = "failed" if state == "failed_reported" else "validating"
        elif state == "ended":
            status = end
        elif state == "cancelling":
            status = "cancelling"
        elif job["polled"] == 0:
            status = "validating"
        elif "finalizing_at" in job:
            status = "finalizing"
        else:
            status = "in_progress"
        results = job["results"]
        total = len(job["requests"])
        completed = sum(1 for r in results if r["kind"] == "ok")
        failed = sum(1 for r in results if r["kind"] == "error")
        if state in ("running", "cancelling"):  # requests done so far, none failed yet
            done = job["requests"][: job["done"]]
            failed = sum(1 for r in done if r["fault"] == "fail")
            completed = len(done) - failed
        usage = {"input_tokens": 0, "output_tokens": 0}
        for r in results:
            if r["kind"] == "ok":
                usage["input_tokens"] += r["body"]["usage"]["prompt_tokens"]
                usage["output_tokens"] += r["body"]["usage"]["completion_tokens"]
        created = job["created_at"]
        reported_fail = state == "failed_reported"
        return {
            "id": job["id"],
            "object": "batch",
            "endpoint": job["endpoint"],
            "model": job.get("model"),
            "errors": {"object": "list", "data": job["errors"]} if reported_fail else None,
            "input_file_id": job["input_file_id"],
            "completion_window": job["completion_window"],
            "status": status,
            "output_file_id": job.get("output_file_id"),
            "error_file_id": job.get("error_file_id"),
            "created_at": int(created),
            "in_progress_at": int(created) if job["polled"] and not job["errors"] else None,
            "expires_at": int(created + _window_seconds(job["completion_window"])),
            "finalizing_at": _int(job.get("finalizing_at")) if status != "in_progress" else None,
            "completed_at": _int(job["ended_at"]) if end == "completed" else None,
            "failed_at": _int(job["ended_at"]) if reported_fail else None,
            "expired_at": _int(job["ended_at"]) if end == "expired" else None,
            "cancelling_at": _int(job["cancel_at"]),
            "cancelled_at": _int(job["ended_at"]) if end == "cancelled" else None,
            "request_counts": {"total": total, "completed": completed, "failed": failed},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["input_tokens"] + usage["output_tokens"],
            },
            "metadata": job["metadata"],
        }


def _window_seconds(window: str) -> float:
    """``"24h"`` -> 86400.0; ``"7d"`` -> 604800.0 (a day for anything else)."""
    match = re.fullmatch(r"(\d+)([hd])", window)
    if match is None:
        return _DAY
    return int(match[1]) * (3600 if match[2] == "h" else _DAY)


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """One page of an OpenAI list: the ``limit`` items after the one with id ``after``."""
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _json(payload: Any, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload).encode()


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _openai_error(400, "We could not parse the JSON body of your request.")
    return body


# ----- Anthropic: message batches --------------------------------------------------


class _AnthropicRoutes:
    """The Anthropic Message Batches routes of `BatchServer` (called under its lock)."""

    _store: _Store
    max_requests: int | None
    max_body_bytes: int

    if TYPE_CHECKING:  # BatchServer's

        @property
        def root_url(self) -> str: ...

        def _new_job(
            self, api: str, batch_id: str, requests: list[dict[str, Any]]
        ) -> dict[str, Any]: ...

        def _advance(self, job: dict[str, Any]) -> None: ...

    def _anthropic(
        self, method: str, path: str, params: dict[str, str], raw: bytes
    ) -> tuple[int, str, bytes]:
        parts = path.strip("/").split("/")[3:]  # after "v1/messages/batches"
        if not parts and method == "POST":
            return _json(self._create_message_batch(raw))
        if not parts and method == "GET":
            return _json(self._list_message_batches(params))
        if len(parts) == 1 and method == "GET":
            job = self._message_batch(parts[0])
            self._advance(job)
            self._store.save_job(job)
            return _json(self._message_batch_json(job))
        if len(parts) == 2 and parts[1] == "results" and method == "GET":
            job = self._message_batch(parts[0])
            if job["state"] != "ended":
                raise _anthropic_error(
                    404,
                    "not_found_error",
                    f"Results for message batch {job['id']} are not available until its "
                    "processing has ended.",
                )
            data = "".join(json.dumps(_anthropic_result(r)) + "\n" for r in job["results"])
            return 200, "application/binary", data.encode()
        if len(parts) == 2 and parts[1] == "cancel" and method == "POST":
            job = self._message_batch(parts[0])
            if job["state"] == "ended":
                raise _anthropic_error(
                    409, "conflict_error", f"Message batch {job['id']} has already ended."
                )
            if job["state"] == "running":
                job.update(state="cancelling", cancel_at=time.time())
                self._store.save_job(job)
            return _json(self._message_batch_json(job))
        raise _anthropic_error(404, "not_found_error", f"Not found: {method} {path}")

    def _message_batch(self, batch_id: str) -> dict[str, Any]:
        job = self._store.jobs.get(batch_id)
        if job is None or job["api"] != "anthropic":
            raise _anthropic_error(404, "not_found_error", f"Message batch {batch_id} not found.")
        return job

    def _create_message_batch(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > self.max_body_bytes:
            raise _anthropic_error(
                413, "request_too_large", "Request exceeds the maximum allowed number of bytes."
            )
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _anthropic_error(400, "invalid_request_error", "The body is not valid JSON.")
        items = body.get("requests")
        if not isinstance(items, list):
            raise _anthropic_error(400, "invalid_request_error", "requests: Field required")
        if not items:
            raise _anthropic_error(
                400, "invalid_request_error", "requests: List should have at least 1 item"
            )
        limit = self.max_requests if self.max_requests is not None else ANTHROPIC_MAX_REQUESTS
        if len(items) > limit:
            raise _anthropic_error(
                400,
                "invalid_request_error",
                f"requests: a message batch holds at most {limit} requests, not {len(items)}",
            )
        requests: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            where = f"requests.{index}"
            if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
                raise _anthropic_error(
                    400, "invalid_request_error", f"{where}.params: Field required"
                )
            custom_id = item.get("custom_id")
            if not isinstance(custom_id, str) or not _ANTHROPIC_CUSTOM_ID.match(custom_id):
                raise _anthropic_error(
                    400,
                    "invalid_request_error",
                    f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
                )
            if custom_id in seen:
                raise _anthropic_error(
                    400,
                    "invalid_request_error",
                    f"{where}.custom_id: duplicate custom_id '{custom_id}'; each request in a "
                    "batch must have a unique custom_id",
                )
            seen.add(custom_id)
            requests.append({"custom_id": custom_id, "body": item["params"]})
        job = self._new_job("anthropic", _random_id("msgbatch_", 24), requests)
        self._store.save_job(job)
        return self._message_batch_json(job)

    def _list_message_batches(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            limit = int(params.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise _anthropic_error(400, "invalid_request_error", "limit: between 1 and 1000")
        jobs = sorted(
            (j for j in self._store.jobs.values() if j["api"] == "anthropic"),
            key=lambda j: -int(j["seq"]),
        )
        ids = [j["id"] for j in jobs]
        after, before = params.get("after_id"), params.get("before_id")
        if after:
            jobs = jobs[ids.index(after) + 1 :] if after in ids else []
            page, more = jobs[:limit], len(jobs) > limit
        elif before:
            jobs = jobs[: ids.index(before)] if before in ids else []
            page, more = jobs[-limit:], len(jobs) > limit
        else:
            page, more = jobs[:limit], len(jobs) > limit
        data = [self._message_batch_json(j) for j in page]
        return {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def _message_batch_json(self, job: dict[str, Any]) -> dict[str, Any]:
        """The ``MessageBatch`` object the API answers for a job now."""
        state = job["state"]
        ended = state == "ended"
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if ended:
            names = {"ok": "succeeded", "error": "errored", "cancelled": "canceled"}
            for result in job["results"]:
                counts[names.get(result["kind"], result["kind"])] += 1
        else:
            counts["processing"] = len(job["requests"])
        created = job["created_at"]
        return {
            "id": job["id"],
            "type": "message_batch",
            "processing_status": "ended"
            if ended
            else ("canceling" if state == "cancelling" else "in_progress"),
            "request_counts": counts,
            "ended_at": _rfc3339(job["ended_at"]),
            "created_at": _rfc3339(created),
            "expires_at": _rfc3339(created + _DAY),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(job["cancel_at"]),
            "results_url": f"{self.root_url}/v1/messages/batches/{job['id']}/results"
            if ended
            else None,
        }


def _anthropic_result(result: dict[str, Any]) -> dict[str, Any]:
    """One line of a message batch's results file."""
    kind = result["kind"]
    if kind == "ok":
        outcome: dict[str, Any] = {"type": "succeeded", "message": result["body"]}
    elif kind == "error":
        error_type = "api_error" if result["status"] >= 500 else "invalid_request_error"
        outcome = {
            "type": "errored",
            "error": {"type": "error", "error": {"type": error_type, "message": result["message"]}},
        }
    else:
        outcome = {"type": "canceled" if kind == "cancelled" else "expired"}
    return {"custom_id": result["custom_id"], "result": outcome}


# ----- the server ------------------------------------------------------------------


class BatchServer(ScriptedServer, _OpenAIRoutes, _AnthropicRoutes):
    """The scripted batch service (see the module doc). ``script`` is read when a job
    is created; set ``server.script`` between jobs to give the next ones other faults."""

    def __init__(
        self,
        script: BatchScript | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        reply: ReplyFn | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        max_requests: int | None = None,
        max_file_bytes: int = OPENAI_MAX_FILE_BYTES,
        max_body_bytes: int = ANTHROPIC_MAX_BODY_BYTES,
        completion_windows: Iterable[str] = ("24h",),
        live_script: Iterable[Action] = (),
    ) -> None:
        super().__init__(live_script, reply=reply, host=host, port=port, api_key=api_key)
        self.script = script or BatchScript()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.max_requests = max_requests
        self.max_file_bytes = max_file_bytes
        self.max_body_bytes = max_body_bytes
        self.completion_windows = tuple(completion_windows)
        self._store = _Store(self.state_dir)
        self._seq = max((int(j.get("seq", 0)) for j in self._store.jobs.values()), default=0)

    @property
    def base_url(self) -> str:
        raise NotImplementedError("use openai_base_url or anthropic_base_url")

    @property
    def openai_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the OpenAI SDK's ``base_url``."""
        return f"{self.root_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``http://127.0.0.1:PORT``, the Anthropic SDK's ``base_url``."""
        return self.root_url

    # ----- what a test reads -----------------------------------------------------

    def submissions(self, api: str | None = None) -> list[Submission]:
        """Every custom_id submitted, in which batch, oldest first (``api``: only that one's)."""
        with self._lock:
            return [s for s in self._store.submissions if api is None or s.api == api]

    def submission_counts(self, api: str | None = None) -> Counter[str]:
        """custom_id -> how many batches it was submitted in."""
        return Counter(s.custom_id for s in self.submissions(api))

    def job(self, batch_id: str) -> dict[str, Any]:
        """A job's stored state (a copy), for assertions."""
        with self._lock:
            return json.loads(json.dumps(self._store.jobs[batch_id]))

    # ----- routing -----------------------------------------------------------------

    async def _dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        path, _, query = target.partition("?")
        api = (
            "anthropic"
            if path.startswith("/v1/messages/batches")
            else "openai"
            if path.startswith(("/v1/files", "/v1/batches"))
            else None
        )
        if api is None:
            return await super()._dispatch(method, target, headers, raw, writer, keep_alive)
        body: Any = None
        if headers.get("content-type", "").startswith("application/json"):
            with contextlib.suppress(ValueError):
                body = json.loads(raw) if raw else None
        self._record(method, path, headers, body, False)  # uploads are kept as files, not here
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            self._authorize(api, headers)
            with self._lock:
                if api == "openai":
                    status, ctype, data = self._openai(method, path, params, headers, raw)
                else:
                    status, ctype, data = self._anthropic(method, path, params, raw)
        except _HTTPError as err:
            return await self._send_json(writer, err.status, err.body, keep_alive=keep_alive)
        except Exception as exc:  # a reply function's bug: say so, not a dropped connection
            message = f"batch_server: {type(exc).__name__}: {exc}"
            error = (
                _anthropic_error(500, "api_error", message)
                if api == "anthropic"
                else _openai_error(500, message)
            )
            return await self._send_json(writer, 500, error.body, keep_alive=keep_alive)
        return await self._send(writer, status, ctype, data, keep_alive=keep_alive)

    def _authorize(self, api: str, headers: dict[str, str]) -> None:
        if self.api_key is None:
            return
        sent = {headers.get("authorization", "").removeprefix("Bearer "), headers.get("x-api-key")}
        if self.api_key in sent:
            return
        if api == "anthropic":
            raise _anthropic_error(401, "authentication_error", "invalid x-api-key")
        raise _openai_error(
            401, "Incorrect API key provided.", code="invalid_api_key"
        )  # the real message shows the key's ends; this one shows nothing of it

    def _earlier(self, api: str, custom_id: str) -> int:
        return self._store.counts[api, custom_id]

    def _new_job(self, api: str, batch_id: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """The common part of a job; logs its submissions and picks each request's fault."""
        now = time.time()
        self._seq += 1
        for request in requests:
            request["fault"] = self.script.fault(
                request["custom_id"], self._earlier(api, request["custom_id"])
            )
        self._store.log_submissions(
            [Submission(api, batch_id, r["custom_id"], now) for r in requests]
        )
        return {
            "id": batch_id,
            "api": api,
            "seq": self._seq,
            "created_at": now,
            "script": self.script.to_json(),
            "requests": requests,
            "polled": 0,
            "done": 0,
            "state": "running",  # running | cancelling | failed (-> failed_reported) | ended
            "cancel_at": None,
            "ended_at": None,
            "end": None,  # completed | expired | cancelled | failed
            "results": [],
        }

    def _advance(self, job: dict[str, Any]) -> None:
        """One retrieve: count the poll, do a share of the requests, end the job when due."""
        if job["state"] in ("ended", "failed_reported"):
            return
        job["polled"] += 1
        now = time.time()
        if job["state"] == "failed":
            job["state"], job["ended_at"] = "failed_reported", now
            return
        if job["state"] == "cancelling":
            self._finish(job, "cancelled", now)
            return
        script = BatchScript.from_json(job["script"])
        n = len(job["requests"])
        share = job["polled"] / (script.polls + 1)
        if script.seconds is not None:
            share = max(share, (now - job["created_at"]) / max(script.seconds, 1e-9))
        if share >= 1.0:
            expiring = any(r["fault"] == "expire" for r in job["requests"])
            self._finish(job, "expired" if expiring else "completed", now)
            return
        job["done"] = max(job["done"], int(n * share))
        if job["api"] == "openai" and job["polled"] == script.polls and script.polls >= 2:
            job["finalizing_at"] = now

    def _finish(self, job: dict[str, Any], end: str, now: float) -> None:
        results = []
        for index, request in enumerate(job["requests"]):
            if end == "cancelled" and index >= job["done"]:
                outcome: dict[str, Any] = {"kind": "cancelled"}
            elif end == "expired" and request["fault"] == "expire":
                outcome = {"kind": "expired"}
            else:
                outcome = self._answer(job["api"], request)
            results.append({"custom_id": request["custom_id"], **outcome})
        # Neither provider keeps the input's order: a stable shuffle, so clients match on
        # custom_id as they must.
        results.sort(key=lambda r: hashlib.sha256(r["custom_id"].encode()).digest())
        job.update(state="ended", end=end, ended_at=now, results=results)
        if end in ("completed", "expired"):
            job.setdefault("finalizing_at", now)
        if job["api"] == "openai":
            self._openai_files(job)

    def _answer(self, api: str, request: dict[str, Any]) -> dict[str, Any]:
        """One request answered as the live endpoint answers it, or its scripted error."""
        body = dict(request["body"])
        if request["fault"] == "fail":
            return {
                "kind": "error",
                "status": 500,
                "message": "The server had an error while processing your request.",
            }
        problem = _body_problem(api, body)
        if problem is not None:
            return {"kind": "error", "status": 400, "message": problem}
        body.pop("stream", None)
        path = "/v1/messages" if api == "anthropic" else "/v1/chat/completions"
        text = self.reply(RecordedRequest("POST", path, {}, body))
        text, cut = _cut_words(text, body.get("max_tokens") or body.get("max_completion_tokens"))
        if request["fault"] == "cut" and not cut:
            text, cut = _cut_words(text, max(1, len(text.split()) // 2))
        usage = (_count_words(body), max(len(text.split()), 1))
        model = str(body.get("model") or self.model)
        if api == "anthropic":
            _, payload = _anthropic_answer(body, text, cut, usage, model)
        else:
            _, payload = _openai_answer(body, text, cut, usage, model, 1)
        return {"kind": "ok", "status": 200, "body": payload}


def _body_problem(api: str, body: dict[str, Any]) -> str | None:
    """Why the live endpoint would refuse this body (400), or None."""
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return (
            "messages: Field required"
            if api == "anthropic"
            else ("Missing required parameter: 'messages'.")
        )
    if not body.get("model"):
        return (
            "model: Field required"
            if api == "anthropic"
            else ("Missing required parameter: 'model'.")
        )
    if api == "anthropic":
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            return "max_tokens: Field required (an integer of at least 1)"
        if body.get("stream"):
            return "stream: streaming is not supported in message batches"
    return None


# ----- command line ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (or ``--duration`` seconds), for tests that need a process."""
    parser = argparse.ArgumentParser(
        prog="python -m hegelion_core.testing.batch_server",
        description="A scripted OpenAI/Anthropic batch service on loopback, for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", choices=_LOOPBACK)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--state-dir", type=Path, default=None, help="jobs persist here")
    parser.add_argument("--polls", type=int, default=1, help="retrieves a job stays unfinished")
    parser.add_argument("--seconds", type=float, default=None, help="or: seconds it takes")
    for kind in _FAULTS:
        parser.add_argument(f"--{kind}", action="append", default=[], metavar="CUSTOM_ID")
        parser.add_argument(f"--{kind}-fraction", type=float, default=0.0)
    parser.add_argument("--attempts", type=int, default=1, help="submissions a fault lasts")
    parser.add_argument("--max-requests", type=int, default=None)
    parser.add_argument("--max-file-bytes", type=int, default=OPENAI_MAX_FILE_BYTES)
    parser.add_argument("--max-body-bytes", type=int, default=ANTHROPIC_MAX_BODY_BYTES)
    parser.add_argument(
        "--completion-window",
        action="append",
        default=None,
        help="an OpenAI completion_window accepted (repeatable; default 24h)",
    )
    parser.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help="answer 401 unless the key in this environment variable is sent (never in argv)",
    )
    parser.add_argument(
        "--reply",
        default=None,
        metavar="MODULE:FUNCTION",
        help="the reply function (request -> text) to answer with (default: a valid trace)",
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        parser.error(f"--api-key-env: the variable {args.api_key_env} is not set or empty")
    script = BatchScript.from_json(
        {
            "polls": args.polls,
            "seconds": args.seconds,
            "attempts": args.attempts,
            **{k: getattr(args, k) for k in _FAULTS},
            **{f"{k}_fraction": getattr(args, f"{k}_fraction") for k in _FAULTS},
        }
    )
    reply = None
    if args.reply:
        module, _, name = args.reply.partition(":")
        try:
            reply = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            parser.error(f"--reply {args.reply}: cannot import it ({exc}); give MODULE:FUNCTION")
    server = BatchServer(
        script,
        reply=reply,
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        api_key=api_key,
        max_requests=args.max_requests,
        max_file_bytes=args.max_file_bytes,
        max_body_bytes=args.max_body_bytes,
        completion_windows=args.completion_window or ("24h",),
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await server._start()
        print(f"serving {server.root_url}", flush=True)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
        finally:
            await server._stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
