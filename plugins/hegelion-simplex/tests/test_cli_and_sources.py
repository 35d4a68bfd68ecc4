"""`hegelion simplex generate` and the prompt sources, through the plugin system."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from hegelion_core.cli import cli, load_plugin_commands
from hegelion_core.evaluation import BeliefRevisionItem, CalibrationItem, load_items
from hegelion_core.plugins import load_driver
from hegelion_core.testing import PromptSourceContract
from hegelion_core.training.data import check_data, data_files
from hegelion_simplex.sources import CalibrationSource


def run(*args: str) -> tuple[int, str]:
    load_plugin_commands(cli)
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def read(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


@pytest.mark.parametrize(
    "stage,model",
    [("context", CalibrationItem), ("calibration", CalibrationItem), ("belief-revision", BeliefRevisionItem)],
)
def test_generate_writes_the_split_layout_and_eval_items(tmp_path: Path, stage: str, model: type) -> None:
    out = tmp_path / stage
    code, output = run(
        "simplex",
        "generate",
        "--stage",
        stage,
        "-n",
        "200",
        "--seed",
        "3",
        "--eval-n",
        "50",
        "--out",
        str(out),
    )
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == [
        ".hegelion-output.json",
        "eval.jsonl",
        "manifest.json",
        "train.jsonl",
        "valid.jsonl",
    ]
    assert len(read(out / "train.jsonl")) == 180 and len(read(out / "valid.jsonl")) == 20
    assert set(data_files(out)) == {"train", "valid"}
    assert check_data(out, "sft") == "chat"  # what `hegelion train --trainer trl|mlx` reads
    items = load_items(out / "eval.jsonl", model)
    assert len(items) == 50
    train_prompts = {
        r["messages"][1]["content"] for r in read(out / "train.jsonl") + read(out / "valid.jsonl")
    }
    assert not train_prompts & {i.messages[-1].content for i in items}, "eval items must be held out"
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["counts"]["eval"] == 50 and manifest["config"]["seed"] == 3
    assert manifest["stage"] == f"simplex-{stage}"


def test_generate_is_deterministic_and_replaces_the_directory(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, "1"), (b, "1"), (c, "2")):
        assert (
            run(
                "simplex",
                "generate",
                "--stage",
                "calibration",
                "-n",
                "100",
                "--seed",
                seed,
                "--out",
                str(out),
            )[0]
            == 0
        )
    for name in ("train.jsonl", "valid.jsonl", "eval.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()
    assert (
        run("simplex", "generate", "--stage", "calibration", "-n", "100", "--seed", "2", "--out", str(a))[0]
        == 0
    )  # its own directory: replaced whole
    assert (a / "train.jsonl").read_bytes() == (c / "train.jsonl").read_bytes()
    (a / "mine.txt").write_text("a file Hegelion did not write")
    code, output = run("simplex", "generate", "--stage", "calibration", "-n", "100", "--out", str(a))
    assert code != 0 and "did not write (mine.txt)" in output
    assert (a / "mine.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary left behind"


def test_local_test_sizes_and_missing_n(tmp_path: Path) -> None:
    code, output = run(
        "simplex", "generate", "--stage", "belief-revision", "--local-test", "--out", str(tmp_path / "x")
    )
    assert code == 0, output
    assert (
        len(read(tmp_path / "x" / "train.jsonl")) == 360 and len(read(tmp_path / "x" / "eval.jsonl")) == 120
    )
    code, output = run("simplex", "generate", "--stage", "context", "--out", str(tmp_path / "y"))
    assert code != 0 and "pass -n N" in output and not (tmp_path / "y").exists()


def test_eval_items_name_the_bad_field(tmp_path: Path) -> None:
    assert (
        run(
            "simplex",
            "generate",
            "--stage",
            "calibration",
            "-n",
            "20",
            "--eval-n",
            "3",
            "--out",
            str(tmp_path / "d"),
        )[0]
        == 0
    )
    rows = read(tmp_path / "d" / "eval.jsonl")
    rows[1]["expected_confidence"] = 1.7
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    from hegelion_core.errors import InputError

    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'expected_confidence'"):
        load_items(bad, CalibrationItem)


class TestCalibrationSource(PromptSourceContract):
    @pytest.fixture
    def driver(self) -> CalibrationSource:
        return CalibrationSource({"n": 30, "seed": 1})


@pytest.mark.parametrize("name", ["simplex-context", "simplex-calibration", "simplex-belief-revision"])
def test_sources_are_registered_and_carry_the_truth(name: str) -> None:
    cls = load_driver("prompt_sources", name)
    prompts = list(cls({"n": 5, "seed": 2}).iter_prompts())
    assert len(prompts) == 5 and all(p.system and p.meta["truth"] and p.meta["reference"] for p in prompts)
    held_out = list(cls({"n": 5, "seed": 2, "stream": "eval"}).iter_prompts())
    assert [p.text for p in held_out] != [p.text for p in prompts]
