"""tracking.report_to on MLX: mlx-lm's own wandb callback gets every row metrics.jsonl
gets (SCU's S and λ included), offline; the trackers mlx-lm lacks are refused before
the model loads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hegelion_mlx.trainer import MLXSCUTrainer, MLXTrainer
from mlx_testutil import read_jsonl, train_config

from hegelion_core import HegelionError
from hegelion_core.testing.tracker_files import wandb_history, wandb_offline_run, wandb_records


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    pytest.importorskip("wandb", reason="pip install wandb")
    for name in ("WANDB_DIR", "WANDB_NAME", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield


def test_wandb_offline_run_holds_metrics_jsonl(
    tiny_model: Path, mlx_data: Path, tmp_path: Path, offline_wandb: None
) -> None:
    out = tmp_path / "mlx-run"
    config = train_config(
        tiny_model,
        training={"max_steps": 4},
        tracking={"report_to": ["wandb"], "project": "hegelion-tests", "run_name": "tiny"},
    )
    MLXSCUTrainer({"progress": False, "steps_per_eval": 0}).train(mlx_data, out, config)
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]

    records = wandb_records(wandb_offline_run(out / "wandb" / "tiny" / "wandb"))
    (run,) = [r.run for r in records if r.HasField("run")]
    assert (run.project, run.display_name) == ("hegelion-tests", "tiny")
    logged = {h["iteration"]: h for h in wandb_history(records) if "loss" in h}
    assert sorted(logged) == [r["step"] for r in rows]
    for r in rows:
        for key in ("loss", "S", "lambda", "lr"):
            assert logged[r["step"]][key] == pytest.approx(r[key], rel=1e-6), key
    val = [h for h in wandb_history(records) if "val_loss" in h]
    expected_val = [r for r in read_jsonl(out / "metrics.jsonl") if "val_loss" in r]
    assert [h["val_loss"] for h in val] == pytest.approx([r["val_loss"] for r in expected_val])
    assert any(r.HasField("exit") for r in records), "the run is finished after training"


@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow", "trackio"])
def test_trackers_mlx_lm_lacks_are_refused_before_loading(tmp_path: Path, tracker: str) -> None:
    config = train_config(tmp_path / "never-loaded", tracking={"report_to": [tracker]})
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "a row"}\n')
    with pytest.raises(HegelionError) as caught:
        MLXTrainer().train(data, tmp_path / "out", config)
    message = str(caught.value)
    assert message.startswith(f"tracking.report_to: the mlx trainer cannot report to {tracker}")
    assert "it reports to wandb" in message and "--trainer trl" in message
    assert not (tmp_path / "out").exists()
