"""``hegelion train``: one command for every trainer plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hegelion_core.cli.options import parse_pairs


def write_train_manifest(output: Path, data: Path, trainer: str, config: Any, result: Any) -> Path:
    from hegelion_core.data.jsonl import atomic_output, dumps
    from hegelion_core.records import FileDigest, StageManifest
    from hegelion_core.secrets import redact
    from hegelion_core.training.data import data_files
    from hegelion_core.training.metrics import plot_metrics

    plot = plot_metrics(output / "metrics.jsonl", output / "metrics.png")
    manifest = StageManifest(
        stage="train",
        inputs=[FileDigest.of(p) for p in data_files(data).values()],
        outputs=[
            str(p)
            for p in (result.adapter_dir, result.merged_dir, output / "metrics.jsonl", plot)
            if p
        ],
        config=redact({"trainer": trainer, **config.model_dump(mode="json")}),
        counts={
            k: int(v) for k, v in result.metrics.items() if k in ("steps", "tokens", "examples")
        },
        versions=result.versions,
    )
    path = output / "manifest.json"
    with atomic_output(path) as tmp:
        tmp.write_bytes(dumps({**manifest.model_dump(mode="json"), "metrics": result.metrics}))
    return path


def _plan(trainer: str, data: Path, output: Path, config: Any) -> None:
    """``--dry-run``: what would train, checked as far as this machine can."""
    import json

    from hegelion_core.errors import HegelionError
    from hegelion_core.plugins import load_driver
    from hegelion_core.training.data import check_data, check_method, is_dataset

    try:
        cls = load_driver("trainers", trainer)
        here, accepts = "installed", cls.accepts or None
    except HegelionError as exc:  # a Mac's or a GPU box's trainer, planned elsewhere
        here, accepts = f"not usable here: {str(exc).splitlines()[0]}", None
    else:
        check_method(trainer, cls.methods, config.method)
    if is_dataset(data):  # read when training starts, into OUTPUT/data/train.jsonl
        fmt = "Hugging Face dataset"
    else:
        fmt = check_data(data, config.method, accepts) + " rows"
    click.echo(
        f"would train: --trainer {trainer} ({here}), --method {config.method} on {data} "
        f"({fmt}), model {config.model}, into {output}"
    )
    click.echo(json.dumps(config.model_dump(mode="json"), indent=2))


@click.command("train")
@click.option("--trainer", required=True, help="trl, mlx, mlx-scu, unsloth, or a plugin's.")
@click.option(
    "--method",
    type=click.Choice(["sft", "dpo", "grpo"]),
    help="Default: from --config, else sft. grpo: reinforcement learning against the "
    "config's grpo.rewards (--data holds prompts).",
)
@click.option("--model", help="Base model: a local directory or a hub id.")
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="A dataset file or split directory from `hegelion dataset`; GRPO prompts; or a "
    "Hugging Face dataset: hf:NAME[:SPLIT], a Parquet file, a saved dataset directory.",
)
@click.option("--output", required=True, type=click.Path(path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Training YAML (the Simplex training_config.yaml layout works).",
)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --output.")
@click.option("--merge", is_flag=True, help="Also write merged weights.")
@click.option("--scu", is_flag=True, help="Regularise with the Shannon Control Unit.")
@click.option(
    "--num-processes", type=int, help="Processes for a distributed launch (trl: accelerate)."
)
@click.option(
    "-c",
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (training.learning_rate=1e-4).",
)
@click.option(
    "-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="A trainer option."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the config and the data and print the plan; "
    "train nothing (works on a machine without the trainer or its GPU).",
)
def train_command(
    trainer: str,
    method: str | None,
    model: str | None,
    data: Path,
    output: Path,
    config_path: Path | None,
    resume: bool,
    merge: bool,
    scu: bool,
    num_processes: int | None,
    overrides: tuple[str, ...],
    options: tuple[str, ...],
    dry_run: bool = False,
) -> None:
    """Fine-tune a model on a Hegelion dataset; write the adapter, a manifest and metrics.

    \b
      hegelion train --trainer trl --method sft --model ./tiny --data sft.jsonl --output runs/a
      hegelion train --trainer mlx-scu --model mlx-community/Qwen3-8B-4bit --data data/ --output runs/b
    """
    from hegelion_core import hooks
    from hegelion_core.plugins import load_driver
    from hegelion_core.training.config import load_train_config
    from hegelion_core.training.data import check_data, check_method, resolve_data
    from hegelion_core.training.scu import SCUConfig

    given: dict[str, Any] = {
        "model": model,
        "method": method,
        "merge": merge or None,
        "resume": resume or None,
        "num_processes": num_processes,
    }
    config = load_train_config(
        config_path, {**{k: v for k, v in given.items() if v is not None}, **parse_pairs(overrides)}
    )
    if scu and config.scu is None:
        config = config.model_copy(update={"scu": SCUConfig()})
    if config.model is None:
        raise click.UsageError("no model: pass --model or set `model:` in --config")
    if dry_run:
        _plan(trainer, data, output, config)
        return
    cls = load_driver("trainers", trainer)
    check_method(trainer, cls.methods, config.method)
    data = resolve_data(data, output)
    check_data(data, config.method, cls.accepts or None)
    driver = cls(parse_pairs(options))
    output.mkdir(parents=True, exist_ok=True)
    with hooks.command_run(
        "train", {"trainer": trainer, "data": str(data), **config.model_dump(mode="json")}
    ) as run:
        result = driver.train(data, output, config)
        run.summary = result
    manifest = write_train_manifest(output, data, trainer, config, result)
    click.echo(f"adapter: {result.adapter_dir}")
    if result.merged_dir:
        click.echo(f"merged:  {result.merged_dir}")
    figures = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
    click.echo(f"metrics: {figures}")
    click.echo(f"manifest: {manifest}")
