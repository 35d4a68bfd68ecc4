"""``hegelion status OUTPUT``: where a generation run stands, safe while it runs.

Reads the output, the rejects file and the run manifest (never the lock), so any
number of generators can keep appending. Costs come from a price table in US
dollars per million tokens, which users extend or override with a TOML or JSON file
(``--prices``, or ``prices.toml`` in the Hegelion config directory)::

    ["my-finetune"]
    input = 0.5
    output = 1.5

Records a batch run wrote (``hegelion generate --batch``: their prompts are listed in
``OUTPUT.batch/prompts.jsonl``) cost `BATCH_DISCOUNT` of the table's price: OpenAI's
Batch API and Anthropic's Message Batches both bill half the live rate.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from hegelion_core.generation.ledger import counts_against_prompt
from hegelion_core.generation.reasons import reject_label
from hegelion_core.secrets import config_dir

#: USD per million tokens (input, output). Local models cost nothing.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-haiku-4": (1.00, 5.00),
    "kimi-k2-thinking": (0.60, 2.50),
    "kimi-k2": (0.60, 2.50),
    "smollm2": (0.0, 0.0),
}


#: What a batch API request costs, as a share of the live price (OpenAI's Batch API and
#: Anthropic's Message Batches: half).
BATCH_DISCOUNT = 0.5


class ModelUsage(BaseModel):
    records: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Of the above, written by a batch run (priced at `BATCH_DISCOUNT`).
    batch_records: int = 0
    batch_prompt_tokens: int = 0
    batch_completion_tokens: int = 0
    cost_usd: float | None = None


class RunStatus(BaseModel):
    output: str
    written: int = 0
    rejected_prompts: int = 0  # rejected for their own fault (at least once), not written
    #: Not written, failed only for reasons not their own (a bad key, an outage): a rerun
    #: tries them again, whatever --max-retries says.
    open_prompts: int = 0
    reject_reasons: dict[str, int] = Field(default_factory=dict)
    limit: int | None = None
    rate_per_min: float = 0.0
    window_min: float = 0.0
    eta_s: float | None = None
    by_model: dict[str, ModelUsage] = Field(default_factory=dict)
    cost_usd: float | None = None
    last_record_at: datetime | None = None


def load_prices(path: Path | None = None) -> dict[str, tuple[float, float]]:
    prices = dict(DEFAULT_PRICES)
    for candidate in [path] if path else [config_dir() / "prices.toml"]:
        if candidate and candidate.is_file():
            raw = (
                json.loads(candidate.read_text())
                if candidate.suffix == ".json"
                else tomllib.loads(candidate.read_text())
            )
            for model, p in raw.items():
                prices[model] = (float(p["input"]), float(p["output"]))
    return prices


def price_for(model: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The longest matching prefix, so dated ids (``gpt-4o-2024-08-06``) find their family."""
    name = model.rsplit("/", 1)[-1].lower()
    matches = [k for k in prices if name.startswith(k.lower())]
    return prices[max(matches, key=len)] if matches else None


def cost_usd(
    prompt_tokens: int, completion_tokens: int, price: tuple[float, float], *, batch: bool = False
) -> float:
    """US dollars for these tokens at ``price`` (per million), at batch prices if asked."""
    live = prompt_tokens * price[0] / 1e6 + completion_tokens * price[1] / 1e6
    return live * BATCH_DISCOUNT if batch else live


def batch_prompt_ids(output: Path) -> set[str]:
    """The prompts a batch run on ``output`` took (their records cost batch prices)."""
    return {
        str(row["prompt_id"])
        for row in _rows(output.with_name(output.name + ".batch") / "prompts.jsonl")
        if "prompt_id" in row
    }


def run_status(
    output: Path,
    *,
    rejects: Path | None = None,
    window_min: float = 10.0,
    prices: dict[str, tuple[float, float]] | None = None,
) -> RunStatus:
    prices = prices if prices is not None else load_prices()
    status = RunStatus(output=str(output), window_min=window_min)
    manifest = output.with_name(output.name + ".manifest.json")
    if manifest.is_file():
        job = orjson.loads(manifest.read_bytes()).get("config", {}).get("job", {})
        status.limit = job.get("limit")
        rejects = rejects or (Path(job["rejects"]) if job.get("rejects") else None)
    rejects = rejects or output.with_name(output.name + ".rejects.jsonl")

    times: list[datetime] = []
    seen: set[str] = set()
    batched = batch_prompt_ids(output)
    for row in _rows(output):
        if row.get("prompt_id") in seen:
            continue
        seen.add(row.get("prompt_id"))
        status.written += 1
        usage = row.get("usage") or {}
        m = status.by_model.setdefault(str(row.get("model") or "unknown"), ModelUsage())
        m.records += 1
        m.prompt_tokens += int(usage.get("prompt_tokens", 0))
        m.completion_tokens += int(usage.get("completion_tokens", 0))
        if row.get("prompt_id") in batched:
            m.batch_records += 1
            m.batch_prompt_tokens += int(usage.get("prompt_tokens", 0))
            m.batch_completion_tokens += int(usage.get("completion_tokens", 0))
        if row.get("created_at"):
            times.append(datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")))

    reasons: Counter[str] = Counter()
    rejected: set[str] = set()
    not_theirs: set[str] = set()
    for row in _rows(rejects):
        if row.get("prompt_id") in seen:
            continue  # rejected once, written later
        label = reject_label(str(row.get("phase")), str(row.get("reason", "")))
        if counts_against_prompt(row):
            rejected.add(row.get("prompt_id"))
        else:
            not_theirs.add(row.get("prompt_id"))
            label += f" ({row.get('blame')}, not counted)"
        reasons[label] += 1
    status.rejected_prompts = len(rejected)
    status.open_prompts = len(not_theirs - rejected)
    status.reject_reasons = dict(reasons.most_common())

    total_cost = 0.0
    priced = True
    for model, m in status.by_model.items():
        p = price_for(model, prices)
        if p is None:
            priced = False
            continue
        live = cost_usd(
            m.prompt_tokens - m.batch_prompt_tokens,
            m.completion_tokens - m.batch_completion_tokens,
            p,
        )
        batch = cost_usd(m.batch_prompt_tokens, m.batch_completion_tokens, p, batch=True)
        m.cost_usd = round(live + batch, 4)
        total_cost += m.cost_usd
    status.cost_usd = round(total_cost, 4) if priced and status.by_model else None

    if times:
        status.last_record_at = max(times)
        since = datetime.now(UTC) - timedelta(minutes=window_min)
        recent = [t for t in times if t >= since]
        if recent:
            span_min = max((max(recent) - min(since, min(recent))).total_seconds() / 60, 1 / 60)
            status.rate_per_min = len(recent) / span_min
        if status.limit and status.rate_per_min > 0:
            status.eta_s = max(status.limit - status.written, 0) / status.rate_per_min * 60
    return status


def _rows(path: Path) -> Any:
    """Complete lines only: a line being appended right now is skipped."""
    if not path.is_file():
        return
    with path.open("rb") as fp:
        for line in fp:
            if not line.endswith(b"\n"):
                return
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue


def render(status: RunStatus) -> str:
    target = f" of {status.limit}" if status.limit else ""
    lines = [
        f"{status.output}: {status.written}{target} written, {status.rejected_prompts} prompts rejected"
    ]
    if status.open_prompts:
        lines[0] += (
            f", {status.open_prompts} failed for reasons not their own (a rerun tries them again)"
        )
    lines.append(f"rate: {status.rate_per_min:.1f}/min over the last {status.window_min:g} min")
    if status.eta_s is not None:
        lines.append(f"eta to the limit: {timedelta(seconds=int(status.eta_s))}")
    if status.last_record_at:
        lines.append(f"last record: {status.last_record_at.isoformat(timespec='seconds')}")
    for model, m in status.by_model.items():
        cost = (
            f", ${m.cost_usd:.4f}" if m.cost_usd is not None else ", price unknown (see --prices)"
        )
        if m.batch_records:
            cost += f" ({m.batch_records} records at batch prices)"
        lines.append(
            f"  {model}: {m.records} records, {m.prompt_tokens} in + {m.completion_tokens} out tokens{cost}"
        )
    if status.cost_usd is not None:
        lines.append(f"total cost: ${status.cost_usd:.4f}")
    if status.reject_reasons:
        lines.append("rejects by reason:")
        lines += [f"  {n:>6}  {reason}" for reason, n in status.reject_reasons.items()]
    return "\n".join(lines)
