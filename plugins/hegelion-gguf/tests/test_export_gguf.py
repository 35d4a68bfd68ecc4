"""`hegelion export gguf` end to end on tiny models: convert, quantize, Modelfile, report.

Real llama.cpp, real tiny HF models (H1's fixtures: byte-level BPE, SentencePiece with
byte fallback). The report's checks are the assertions: a converter bug shows there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_helpers import hegelion, listing, read_report, train_lora

from hegelion_gguf.export.modelfile import ChatTemplateError  # noqa: F401  (import check)

#: an Ollama TEMPLATE for the SPM fixture's "[role] text</s>" chat format
SPM_GO_TEMPLATE = "{{- range .Messages }}[{{ .Role }}] {{ .Content }}</s>{{ end }}[assistant] "


@pytest.fixture(scope="module")
def spm_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "spm.tmpl"
    path.write_text(SPM_GO_TEMPLATE, encoding="utf-8")
    return path


def checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


@pytest.mark.parametrize("quantization", ["f16", "q4_k_m"])
def test_bpe_model_exports_through_the_cli(export_models, tmp_path, quantization):
    out = tmp_path / "out"
    result = hegelion(
        "export",
        "gguf",
        "--model",
        export_models.model("llama-bpe"),
        "--quantization",
        quantization,
        "--name",
        "Tiny BPE",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    gguf = out / f"tiny-bpe.{quantization}.gguf"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [gguf.name, "Modelfile", "report.json", "manifest.json", ".hegelion-output.json"]
    )
    assert "ollama create tiny-bpe -f" in result.output
    assert "verification passed" in result.output

    report = read_report(out)
    assert report["passed"] and report["quantization"] == quantization
    by_name = checks(report)
    assert by_name["load"]["passed"] and by_name["tokenization"]["figures"]["mismatches"] == []
    if quantization == "f16":
        logits = by_name["logits"]["figures"]
        assert logits["max_abs_diff"] <= logits["tolerance"]
        assert logits["max_abs_diff"] < 5e-3  # measured about 2e-4
    else:
        top1 = by_name["top1"]["figures"]
        assert top1["agreement"] >= top1["threshold"] == 0.7
        assert top1["positions"] > 20
    assert by_name["generation"]["figures"]["completion_tokens"] > 0

    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{gguf.name}\n")
    assert "<|im_start|>user\n{{ .Content }}<|im_end|>" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "ADAPTER" not in modelfile

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "export" and manifest["config"]["quantization"] == quantization
    assert manifest["report"]["checks"] == {
        "load": True,
        "tokenization": True,
        "logits" if quantization == "f16" else "top1": True,
        "generation": True,
    }
    assert any(i["path"].endswith("model.safetensors") for i in manifest["inputs"])
    assert listing(tmp_path) == sorted(["out", *(f"out/{p.name}" for p in out.iterdir())])


def test_quantized_file_is_smaller_and_k_quantized(export_models, tmp_path):
    from gguf import GGUFReader

    sizes = {}
    for q in ("f16", "q4_k_m"):
        out = tmp_path / q
        assert (
            hegelion(
                "export",
                "gguf",
                "--model",
                export_models.model("llama-bpe"),
                "--quantization",
                q,
                "--name",
                "t",
                "--out",
                out,
                "--no-verify",
            ).exit_code
            == 0
        )
        sizes[q] = (out / f"t.{q}.gguf").stat().st_size
        assert not (out / "report.json").exists()
    assert sizes["q4_k_m"] < sizes["f16"] * 0.5
    types = {t.tensor_type.name for t in GGUFReader(tmp_path / "q4_k_m" / "t.q4_k_m.gguf").tensors}
    assert "Q4_K" in types


@pytest.mark.parametrize("quantization", ["f16", "q4_k_m"])
def test_spm_model_needs_and_takes_a_template(export_models, tmp_path, spm_template, quantization):
    model = export_models.model("llama-spm")
    out = tmp_path / "out"
    refused = hegelion(
        "export", "gguf", "--model", model, "--quantization", quantization, "--out", out
    )
    assert refused.exit_code == 1
    assert "none of the formats" in refused.output and "--template FILE" in refused.output
    assert not out.exists() and listing(tmp_path) == []

    result = hegelion(
        "export",
        "gguf",
        "--model",
        model,
        "--quantization",
        quantization,
        "--name",
        "spm",
        "--out",
        out,
        "--template",
        spm_template,
        "--system",
        "Be brief.",
        "--num-ctx",
        "512",
        "--temperature",
        "0.2",
    )
    assert result.exit_code == 0, result.output
    report = read_report(out)
    assert report["passed"], report
    assert checks(report)["tokenization"]["passed"]
    modelfile = (out / "Modelfile").read_text()
    assert f'TEMPLATE """{SPM_GO_TEMPLATE}"""' in modelfile
    assert 'SYSTEM """Be brief."""' in modelfile
    assert 'PARAMETER stop "</s>"' in modelfile  # the eos, from the tokenizer
    assert "PARAMETER num_ctx 512" in modelfile and "PARAMETER temperature 0.2" in modelfile


def test_adapter_is_merged_and_checked(export_models, tmp_path):
    model = export_models.model("qwen2-bpe")
    adapter = train_lora(model, tmp_path / "run" / "adapter", steps=2, random_init=True)
    out = tmp_path / "out"
    result = hegelion(
        "export",
        "gguf",
        "--model",
        model,
        "--adapter",
        adapter,
        "--quantization",
        "f32",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    report = read_report(out)
    assert report["passed"] and "merged" in report["reference"]
    assert checks(report)["logits"]["figures"]["max_abs_diff"] < 1e-3
    assert (out / "run.f32.gguf").is_file()  # the name defaults to the run directory
    assert not (out / ".work").exists()

    # The merged GGUF differs from the plain base: the adapter is in it.
    from gguf import GGUFReader

    base = tmp_path / "base"
    assert (
        hegelion(
            "export",
            "gguf",
            "--model",
            model,
            "--quantization",
            "f32",
            "--name",
            "b",
            "--out",
            base,
            "--no-verify",
        ).exit_code
        == 0
    )
    q = {t.name: t.data for t in GGUFReader(base / "b.f32.gguf").tensors}
    m = {t.name: t.data for t in GGUFReader(out / "run.f32.gguf").tensors}
    assert abs(q["blk.0.attn_v.weight"] - m["blk.0.attn_v.weight"]).max() > 1e-3
    assert (q["token_embd.weight"] == m["token_embd.weight"]).all()


def test_adapter_only_writes_a_lora_gguf_and_adapter_line(export_models, tmp_path):
    model = export_models.model("llama-bpe")
    adapter = train_lora(model, tmp_path / "adapter", steps=2, random_init=True)
    out = tmp_path / "out"
    result = hegelion(
        "export",
        "gguf",
        "--model",
        model,
        "--adapter",
        adapter,
        "--adapter-only",
        "--quantization",
        "f16",
        "--name",
        "lora",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "lora.f16.gguf",
        "lora.lora.gguf",
        "Modelfile",
        "report.json",
        "manifest.json",
        ".hegelion-output.json",
    }
    modelfile = (out / "Modelfile").read_text().splitlines()
    assert modelfile[:2] == ["FROM ./lora.f16.gguf", "ADAPTER ./lora.lora.gguf"]
    report = read_report(out)
    assert report["passed"] and report["lora_gguf"].endswith("lora.lora.gguf")
    assert report["adapter"] == str(adapter)
    assert checks(report)["logits"]["figures"]["max_abs_diff"] < 5e-3


def test_existing_out_is_written_only_on_success(export_models, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous export")
    missing = hegelion("export", "gguf", "--model", tmp_path / "nope", "--out", out)
    assert missing.exit_code == 1 and "--model" in missing.output and "nope" in missing.output
    assert listing(tmp_path) == ["out", "out/old.txt"]
    ok = hegelion(
        "export",
        "gguf",
        "--model",
        export_models.model("llama-bpe"),
        "--quantization",
        "f16",
        "--name",
        "x",
        "--out",
        out,
        "--no-verify",
    )
    assert ok.exit_code == 0, ok.output
    # Written beside what was there, never over it (test_export_dest.py has the rest).
    assert (out / "old.txt").read_text() == "previous export" and (out / "x.f16.gguf").is_file()
