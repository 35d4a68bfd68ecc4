"""`hegelion export --out DIR` never destroys what Hegelion did not write: the export's
files go into DIR beside the others, replace only files an export wrote, and an input
inside DIR is refused."""

from __future__ import annotations

import json
import shutil

import pytest
from export_helpers import hegelion, listing, train_lora

from hegelion_core.data.jsonl import OUTPUT_MARK


def gguf(model, out, *extra):
    return hegelion(
        "export",
        "gguf",
        "--model",
        model,
        "--quantization",
        "f16",
        "--name",
        "x",
        "--out",
        out,
        "--no-verify",
        *extra,
    )


def test_gguf_into_a_directory_of_the_users_keeps_its_files(export_models, tmp_path):
    out = tmp_path / "models"
    (out / "theirs").mkdir(parents=True)
    (out / "my-model.q4_k_m.gguf").write_bytes(b"GGUF the user's")
    (out / "theirs" / "notes.txt").write_text("mine")
    result = gguf(export_models.model("llama-bpe"), out)
    assert result.exit_code == 0, result.output
    assert (out / "my-model.q4_k_m.gguf").read_bytes() == b"GGUF the user's"
    assert (out / "theirs" / "notes.txt").read_text() == "mine"
    assert listing(tmp_path) == sorted(
        [
            "models",
            f"models/{OUTPUT_MARK}",
            "models/Modelfile",
            "models/manifest.json",
            "models/my-model.q4_k_m.gguf",
            "models/theirs",
            "models/theirs/notes.txt",
            "models/x.f16.gguf",
        ]
    )
    mark = json.loads((out / OUTPUT_MARK).read_text())
    assert mark["names"] == ["Modelfile", "manifest.json", "x.f16.gguf"]


def test_merged_into_a_directory_of_the_users_keeps_its_files(export_models, tmp_path):
    model = export_models.model("llama-bpe")
    adapter = train_lora(model, tmp_path / "run" / "adapter", steps=1, random_init=True)
    out = tmp_path / "models"
    out.mkdir()
    (out / "README.txt").write_text("the user's")
    result = hegelion(
        "export", "merged", "--model", model, "--adapter", adapter, "--out", out, "--no-verify"
    )
    assert result.exit_code == 0, result.output
    assert (out / "README.txt").read_text() == "the user's"
    assert (out / "model.safetensors").is_file() and (out / "manifest.json").is_file()
    assert "README.txt" not in json.loads((out / OUTPUT_MARK).read_text())["names"]
    assert f"{out / OUTPUT_MARK}" not in result.output  # not listed as an exported file


def test_reexporting_into_its_own_output_updates_it(export_models, tmp_path):
    model = export_models.model("llama-bpe")
    out = tmp_path / "out"
    assert gguf(model, out).exit_code == 0
    first = (out / "x.f16.gguf").stat().st_mtime_ns
    again = gguf(model, out, "--temperature", "0.1")
    assert again.exit_code == 0, again.output
    assert "PARAMETER temperature 0.1" in (out / "Modelfile").read_text()
    assert (out / "x.f16.gguf").stat().st_mtime_ns != first
    assert json.loads((out / "manifest.json").read_text())["config"]["temperature"] == 0.1

    # An export by a version without the mark: its manifest vouches for the files it lists.
    (out / OUTPUT_MARK).unlink()
    assert gguf(model, out, "--temperature", "0.2").exit_code == 0
    assert "PARAMETER temperature 0.2" in (out / "Modelfile").read_text()


def test_a_file_of_the_same_name_that_hegelion_did_not_write_stops_the_export(
    export_models, tmp_path
):
    out = tmp_path / "models"
    out.mkdir()
    (out / "Modelfile").write_text("FROM ./theirs.gguf\n")
    result = gguf(export_models.model("llama-bpe"), out)
    assert result.exit_code == 1
    assert f"{out}: holds files that Hegelion did not write (Modelfile)" in result.output
    assert f"--out {out / 'x'}" in result.output and "Traceback" not in result.output
    (out / "manifest.json").write_text('{"theirs": true}')
    (out / "Modelfile").unlink()
    result = gguf(export_models.model("llama-bpe"), out)
    assert result.exit_code == 1 and "(manifest.json)" in result.output
    assert listing(tmp_path) == ["models", "models/manifest.json"]


@pytest.mark.parametrize("exporter", ["gguf", "merged"])
def test_an_input_inside_out_is_refused(export_models, tmp_path, exporter):
    out = tmp_path / "out"
    model = out / "base"
    shutil.copytree(export_models.model("llama-bpe"), model)
    adapter = (
        ["--adapter", str(train_lora(model, tmp_path / "a" / "adapter", steps=1))]
        if exporter == "merged"
        else ["--quantization", "f16"]
    )
    before = listing(tmp_path)
    for given, where in ((out, "holds"), (model, "is")):
        result = hegelion(
            "export",
            exporter,
            "--model",
            model,
            *adapter,
            "--out",
            given / "." if where == "is" else given,
        )
        assert result.exit_code == 1
        assert f"the output directory {where} the input {model}" in result.output
    assert listing(tmp_path) == before
