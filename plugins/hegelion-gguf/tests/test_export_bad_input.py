"""Bad input to `hegelion export`: a clear message, exit status 1, and nothing
half-written: --out keeps what it held and no temporary sibling stays behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from export_helpers import hegelion, listing, train_lora

from hegelion_gguf.export import SUPPORTED_ARCHITECTURES


def copy_model(src: Path, dst: Path, *, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name not in skip:
            shutil.copy2(f, dst / f.name)
    return dst


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """An --out that holds an earlier export, which a failed export must not touch."""
    out = tmp_path / "exports" / "out"
    out.mkdir(parents=True)
    (out / "model.gguf").write_bytes(b"GGUF previous")
    return out


def assert_untouched(out: Path) -> None:
    assert listing(out.parent) == ["out", "out/model.gguf"]
    assert (out / "model.gguf").read_bytes() == b"GGUF previous"


def test_missing_tokenizer(export_models, tmp_path, previous):
    model = copy_model(
        export_models.model("llama-bpe"),
        tmp_path / "m",
        skip=("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"),
    )
    result = hegelion("export", "gguf", "--model", model, "--out", previous)
    assert result.exit_code == 1
    assert f"{model}: no tokenizer found" in result.output
    assert "save_pretrained" in result.output  # the fix
    assert "Traceback" not in result.output
    assert_untouched(previous)


def test_unsupported_architecture_lists_supported(export_models, tmp_path, previous):
    model = copy_model(export_models.model("llama-bpe"), tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    config.update(architectures=["GPT2LMHeadModel"], model_type="gpt2")
    (model / "config.json").write_text(json.dumps(config))
    result = hegelion("export", "gguf", "--model", model, "--out", previous)
    assert result.exit_code == 1
    assert "'GPT2LMHeadModel' is not supported" in result.output
    for arch in SUPPORTED_ARCHITECTURES:
        assert arch in result.output
    assert "LLAMA_CPP_DIR" in result.output
    assert_untouched(previous)


@pytest.mark.parametrize("exporter", ["gguf", "merged"])
def test_adapter_for_another_base(export_models, tmp_path, previous, exporter):
    from hegelion_core.testing.tiny_models import build_tiny_model

    other = build_tiny_model(tmp_path / "other")  # hidden 64; the export base has 256
    adapter = train_lora(other, tmp_path / "adapter", steps=1)
    base = export_models.model("llama-bpe")
    result = hegelion("export", exporter, "--model", base, "--adapter", adapter, "--out", previous)
    assert result.exit_code == 1
    assert f"adapter {adapter} does not fit base model {base}" in result.output
    assert f"adapter trained on {str(other)!r}" in result.output
    # the first misfit tensor, with both shapes: lora_A is (r, in) of hidden-64 modules
    assert re.search(
        r"base_model\.model\.model\.layers\.0\.\S+\.lora_A\.weight has shape "
        r"\[8, (64|128)\] but the base's model\.layers\.0\.\S+\.weight is "
        r"\[(256|128|512), (256|512)\]",
        result.output,
    ), result.output
    assert_untouched(previous)


def test_adapter_dir_without_config(export_models, tmp_path, previous):
    empty = tmp_path / "adapter"
    empty.mkdir()
    result = hegelion(
        "export",
        "merged",
        "--model",
        export_models.model("llama-bpe"),
        "--adapter",
        empty,
        "--out",
        previous,
    )
    assert result.exit_code == 1
    assert f"{empty / 'adapter_config.json'}: no PEFT adapter config here" in result.output
    assert_untouched(previous)


def test_merged_needs_an_adapter(export_models, previous):
    result = hegelion(
        "export", "merged", "--model", export_models.model("llama-bpe"), "--out", previous
    )
    assert result.exit_code == 1 and "needs --adapter DIR" in result.output
    assert_untouched(previous)


def test_failed_verification_keeps_out_and_names_the_check(export_models, previous, monkeypatch):
    from hegelion_gguf.export import verify

    monkeypatch.setitem(verify.LOGIT_TOLERANCE, "f32", 0.0)  # no float result is exact
    result = hegelion(
        "export",
        "gguf",
        "--model",
        export_models.model("llama-bpe"),
        "--quantization",
        "f32",
        "--out",
        previous,
    )
    assert result.exit_code == 1
    assert "failed verification (logits)" in result.output
    assert "[FAIL] logits" in result.output and "[ok] tokenization" in result.output
    failed = previous.with_name("out.failed-report.json")
    report = json.loads(failed.read_text())
    assert report["passed"] is False
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["logits"]
    failed.unlink()
    assert_untouched(previous)


def test_unknown_option_and_exporter(export_models, previous):
    bad = hegelion(
        "export",
        "gguf",
        "--model",
        export_models.model("llama-bpe"),
        "--out",
        previous,
        "-o",
        "quantisation=q4_k_m",
    )
    assert bad.exit_code == 1 and "quantisation: unknown field" in bad.output
    unknown = hegelion("export", "onnx", "--model", "x", "--out", previous)
    assert unknown.exit_code == 1
    assert "no exporter named 'onnx'. Available: gguf, merged" in unknown.output
    assert_untouched(previous)


# ----- a full disk -------------------------------------------------------------------------

RLIMIT_RUNNER = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from hegelion_core.cli import main
main(sys.argv[2:])
"""


def can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if ok:
        subprocess.run(["umount", str(where)], check=True)
    return ok


@pytest.fixture(params=["tmpfs", "rlimit"])
def small_disk(request, tmp_path):
    """(directory, runner): a 1.5 MiB tmpfs (when root may mount) or a file-size limit
    of 1.5 MiB on the export process; either way the export cannot fit."""
    size = 1536 * 1024
    disk = tmp_path / "disk"
    if request.param == "tmpfs":
        if not can_mount_tmpfs(tmp_path / "probe"):
            pytest.skip("cannot mount a tmpfs here (not root); the rlimit variant runs")
        disk.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True
        )
        runner = [sys.executable, "-m", "hegelion_core"]
    else:
        disk.mkdir()
        runner = [sys.executable, "-c", RLIMIT_RUNNER, str(size)]
    yield disk, runner
    if request.param == "tmpfs":
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("exporter", ["gguf", "merged"])
def test_full_disk(export_models, tmp_path, small_disk, exporter):
    disk, runner = small_disk
    model = export_models.model("llama-bpe")  # f32 safetensors about 3 MiB
    out = disk / "out"
    out.mkdir()
    (out / "model.gguf").write_bytes(b"GGUF previous")
    args = ["export", exporter, "--model", str(model), "--out", str(out)]
    if exporter == "gguf":
        args += ["--quantization", "f32"]
    else:
        args += ["--adapter", str(train_lora(model, tmp_path / "adapter", steps=1))]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [*runner, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    err = proc.stderr
    assert "no space left on the disk while writing the export" in err, err[-3000:]
    assert str(disk) in err and "MiB free on the file system of" in err
    assert f"nothing was written to {out}" in err
    assert "Traceback" not in err
    assert listing(disk) == ["out", "out/model.gguf"]
    assert (out / "model.gguf").read_bytes() == b"GGUF previous"
