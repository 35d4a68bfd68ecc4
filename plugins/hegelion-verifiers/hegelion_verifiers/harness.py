"""One chat completion per rollout, in-process: the harness the Hegelion tasks need.

verifiers' own chat harnesses (``null``, ``bash``) run a PEP 723 program that ``uv``
installs into a fresh environment at the first rollout, which needs uv and the network.
The dialectic is one model turn with no tools, so this harness makes that one call
itself, through verifiers' interception endpoint (which applies ``--model`` and
``--sampling.*``, records the call on the trace, and forwards it to ``--client``), as
verifiers' Harness contract allows: "a harness may run its loop in-process".
"""

from __future__ import annotations

from typing import Any

import verifiers.v1 as vf
from openai import APIConnectionError, APIError, AsyncOpenAI
from verifiers.v1.errors import MODEL_TRANSPORT_ERROR_EXIT_CODE
from verifiers.v1.types import content_text

from hegelion_core import scrub


class HegelionHarnessConfig(vf.HarnessConfig):
    """No knobs: the model, sampling and endpoint are the run's (``-m``, ``--sampling``,
    ``--client``)."""


class HegelionHarness(vf.Harness[HegelionHarnessConfig]):
    APPENDS_SYSTEM_PROMPT = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: vf.ModelContext,
        trace: vf.Trace,
        runtime: vf.Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: vf.TaskData,
    ) -> vf.ProgramResult:
        system, prompt = self.resolve_prompt(data)
        messages: list[Any] = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        else:
            messages += [{"role": m.role, "content": content_text(m.content)} for m in prompt or []]
        try:
            async with AsyncOpenAI(base_url=endpoint, api_key=secret) as client:
                await client.chat.completions.create(model=ctx.model, messages=messages)
        except APIConnectionError as exc:  # the interception server is unreachable
            return vf.ProgramResult(MODEL_TRANSPORT_ERROR_EXIT_CODE, "", scrub(str(exc)))
        except APIError as exc:  # the model's server refused or failed: a failed rollout
            return vf.ProgramResult(1, "", f"{type(exc).__name__}: {scrub(str(exc))}")
        return vf.ProgramResult(0, "", "")
