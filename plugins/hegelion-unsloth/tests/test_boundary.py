"""The GPU boundary, tested where there is no GPU.

- Loading the driver imports neither unsloth nor torch (``hegelion plugins`` does it
  on every machine).
- ``hegelion train --trainer unsloth`` without a GPU stops with one clear message that
  names ``--trainer trl`` and ``--trainer mlx``, before importing unsloth.
- The real ``import unsloth`` refuses this machine, and that refusal is translated too.
- The arguments the mapping produces are parameters of the installed Unsloth's real
  functions (read with ``UNSLOTH_ALLOW_CPU=1``, Unsloth's own switch for CPU-only CI,
  which lets it import but not load a model), and fields of TRL's configs.

Unsloth-importing checks run in subprocesses: importing it patches trl, transformers
and peft for the whole process.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hegelion_unsloth import __version__
from hegelion_unsloth.gpu import NoGPUError, library_versions
from hegelion_unsloth.mapping import MERGE_METHOD, UnslothOptions, build_plan
from hegelion_unsloth.trainer import UnslothTrainer
from unsloth_helpers import Formatted

from hegelion_core.errors import HegelionError
from hegelion_core.training.config import load_train_config

HEAVY = ("unsloth", "unsloth_zoo", "torch", "trl", "transformers", "peft", "bitsandbytes", "triton")


def unsloth_modules() -> list[str]:
    """Modules of unsloth's packages in this process. A failed ``import unsloth`` takes
    the package itself out of sys.modules but leaves the submodules it had loaded."""
    return sorted(m for m in sys.modules if m.split(".")[0] in ("unsloth", "unsloth_zoo"))


def python(
    code: str, cwd: Path, *, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in ``cwd``; Unsloth's compile cache goes there too."""
    environ = (
        os.environ | {"UNSLOTH_COMPILE_LOCATION": str(cwd / "unsloth_compiled_cache")} | (env or {})
    )
    environ = {k: v for k, v in environ.items() if k not in drop}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=300,
    )


def last_json(stdout: str) -> Any:
    """The JSON line a subprocess printed last (Unsloth prints banners before it)."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def all_plans(tmp_path: Path) -> list[Any]:
    """The argument sets the mapping can produce: SFT/DPO/GRPO, 4-bit/16-bit, with and
    without eval; GRPO with vLLM (fast_inference) too, and each GRPO loss type."""
    plans = []
    for method in ("sft", "dpo", "grpo"):
        for quant in ("4bit", "none", "8bit"):
            cfg = load_train_config(
                None, {"model": "m", "method": method, "quantization": quant, "resume": True}
            )
            for has_eval in (False, True):
                plans.append(
                    build_plan(
                        cfg, UnslothOptions(), tmp_path, bf16_supported=True, has_eval=has_eval
                    )
                )
    for loss_type in ("grpo", "dapo", "dr_grpo", "bnpo"):
        cfg = load_train_config(None, {"model": "m", "method": "grpo", "grpo.loss_type": loss_type})
        options = UnslothOptions(fast_inference=True)
        plans.append(build_plan(cfg, options, tmp_path, bf16_supported=True))
    return plans


# ----- loading the driver is light ----------------------------------------------------


def test_entry_point_loads_without_unsloth_or_torch(tmp_path: Path) -> None:
    code = f"""
import json, sys
from hegelion_core.plugins import load_driver
cls = load_driver("trainers", "unsloth")
cls({{"dtype": "float16"}})
print(json.dumps({{"cls": cls.__module__ + "." + cls.__qualname__, "accepts": list(cls.accepts),
                  "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))}}))
"""
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    seen = last_json(result.stdout)
    assert seen["cls"] == "hegelion_unsloth.trainer.UnslothTrainer"
    assert seen["accepts"] == ["chat", "sft", "scu", "dpo", "prompts"]
    assert seen["heavy"] == [], f"loading the driver imported {seen['heavy']}"


def test_hegelion_plugins_lists_the_trainer_as_ok(hegelion_exe: Path) -> None:
    result = subprocess.run(
        [str(hegelion_exe), "plugins", "--json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    ours = [
        d
        for d in json.loads(result.stdout)["drivers"]
        if d["role"] == "trainers" and d["name"] == "unsloth"
    ]
    assert len(ours) == 1 and ours[0]["status"] == "ok", ours
    assert ours[0]["distribution"] == "hegelion-unsloth" and ours[0]["version"] == __version__


# ----- no GPU: one clear message ------------------------------------------------------


@pytest.mark.parametrize(("method", "fmt"), [("sft", "sft"), ("sft", "chat"), ("dpo", "dpo")])
def test_cli_without_a_gpu_names_the_alternatives(
    hegelion_exe: Path, formatted: Formatted, tmp_path: Path, method: str, fmt: str
) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            str(hegelion_exe),
            "train",
            "--trainer",
            "unsloth",
            "--method",
            method,
            "--model",
            str(tmp_path / "never-loaded"),
            "--data",
            str(formatted(fmt)),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    err = result.stderr
    assert "the unsloth trainer needs an NVIDIA GPU" in err
    assert "--trainer trl" in err and "--trainer mlx" in err
    assert "torch" in err, "the message says what was found"
    assert "Traceback" not in err and "NotImplementedError" not in err
    assert not (out / "adapter").exists() and not (out / "manifest.json").exists()


def test_gpu_is_checked_before_unsloth_is_imported(formatted: Formatted, tmp_path: Path) -> None:
    cfg = load_train_config(None, {"model": str(tmp_path / "never-loaded")})
    with pytest.raises(NoGPUError, match="--trainer trl.*--trainer mlx"):
        UnslothTrainer().train(formatted("chat"), tmp_path / "run", cfg)
    assert not unsloth_modules(), (
        f"the GPU check must come before `import unsloth`: {unsloth_modules()[:5]}"
    )


def test_data_and_config_errors_come_before_the_gpu_check(
    formatted: Formatted, tmp_path: Path
) -> None:
    cfg = load_train_config(None, {"model": "m", "method": "dpo"})
    with pytest.raises(HegelionError, match="--format dpo"):
        UnslothTrainer().train(formatted("chat"), tmp_path / "run", cfg)
    with pytest.raises(HegelionError, match="--num-processes"):
        UnslothTrainer().train(
            formatted("chat"),
            tmp_path / "run",
            cfg.model_copy(update={"method": "sft", "num_processes": 2}),
        )


def test_real_unsloth_refusal_becomes_the_same_clear_error(tmp_path: Path) -> None:
    code = """
from hegelion_unsloth.gpu import NoGPUError, import_unsloth
try:
    import_unsloth()
except NoGPUError as exc:
    print("NoGPUError:", exc)
"""
    result = python(code, tmp_path, drop=("UNSLOTH_ALLOW_CPU",))
    assert result.returncode == 0, result.stderr
    assert "NoGPUError: the unsloth trainer needs an NVIDIA GPU" in result.stdout
    assert "Unsloth cannot find any torch accelerator" in result.stdout, (
        "Unsloth's own reason is kept"
    )
    assert "--trainer trl" in result.stdout and "--trainer mlx" in result.stdout


# ----- the mapped arguments fit the real functions -----------------------------------


def test_mapped_arguments_are_real_parameters_of_the_installed_unsloth(tmp_path: Path) -> None:
    code = """
import inspect, json
import unsloth
from unsloth import FastLanguageModel
from unsloth.save import unsloth_generic_save_pretrained_merged as merged

def params(fn):
    return {n: {"kind": p.kind.name, "default": repr(p.default)} for n, p in inspect.signature(fn).parameters.items()}

print(json.dumps({"version": unsloth.__version__,
                  "from_pretrained": params(FastLanguageModel.from_pretrained),
                  "get_peft_model": params(FastLanguageModel.get_peft_model),
                  "save_pretrained_merged": params(merged),
                  "for_training": hasattr(FastLanguageModel, "for_training"),
                  "PatchDPOTrainer": hasattr(unsloth, "PatchDPOTrainer")}))
"""
    result = python(code, tmp_path, env={"UNSLOTH_ALLOW_CPU": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    real = last_json(result.stdout)
    named = {
        fn: {n for n, p in real[fn].items() if p["kind"] != "VAR_KEYWORD"}
        for fn in ("from_pretrained", "get_peft_model", "save_pretrained_merged")
    }
    for p in all_plans(tmp_path):
        # Named parameters, not swallowed by **kwargs: a misspelling would pass silently there.
        assert set(p.load) <= named["from_pretrained"], set(p.load) - named["from_pretrained"]
        assert set(p.peft) <= named["get_peft_model"], set(p.peft) - named["get_peft_model"]
    assert {"save_directory", "tokenizer", "save_method"} <= named["save_pretrained_merged"]
    assert real["save_pretrained_merged"]["save_method"]["default"] == repr(MERGE_METHOD)
    # Unsloth's own LoRA defaults differ from Hegelion's: why r and alpha are always passed.
    assert real["get_peft_model"]["lora_alpha"]["default"] == "16"
    assert real["get_peft_model"]["lora_dropout"]["default"] == "0.0"
    assert real["from_pretrained"]["load_in_4bit"]["default"] == "True"
    assert real["for_training"]


def test_mapped_arguments_are_fields_of_trls_configs(tmp_path: Path) -> None:
    import trl

    fields = {
        "sft": {f.name for f in dataclasses.fields(trl.SFTConfig)},
        "dpo": {f.name for f in dataclasses.fields(trl.DPOConfig)},
        "grpo": {f.name for f in dataclasses.fields(trl.GRPOConfig)},
    }
    for p in all_plans(tmp_path):
        assert set(p.args) <= fields[p.method], set(p.args) - fields[p.method]
    assert "warmup_ratio" not in fields["sft"], (
        "transformers dropped warmup_ratio; the mapping relies on that"
    )


def test_versions_are_read_without_importing() -> None:
    versions = library_versions()
    assert versions["hegelion-unsloth"] == __version__
    assert {"unsloth", "unsloth_zoo", "trl", "peft", "transformers", "torch"} <= set(versions)
    assert not unsloth_modules()


def unsloth_rl_source() -> str:
    """The installed Unsloth's ``models/rl.py``, read as text (nothing imported)."""
    spec = importlib.util.find_spec("unsloth")
    assert spec is not None and spec.submodule_search_locations, "unsloth is not installed"
    return (Path(next(iter(spec.submodule_search_locations))) / "models" / "rl.py").read_text()


def test_unsloths_grpo_config_rewrite_is_the_one_the_pins_answer() -> None:
    """`mapping.unsloth_grpo_pins` answers what Unsloth's rewrite of GRPOConfig.__init__
    changes when left to it. Read from the installed source: CPU CI cannot build the
    patched class (``UNSLOTH_ALLOW_CPU`` skips the trainer patches), and a GPU run does
    (tests/gpu/run_gpu_checks.py checks the built config's values there). A change here
    means the pins need another look."""
    source = unsloth_rl_source()
    dapo = source[source.index("elif loss_type.lower() == 'dapo'") :][:1200]
    # An explicit dapo: epsilon_high and mask_truncated_completions set only when not given.
    assert "if epsilon_high is None:" in dapo and "epsilon_high = 0.28" in dapo
    assert "if mask_truncated_completions is None:" in dapo
    # dr_grpo: "group" becomes False; None is read as "keep scaling".
    dr = source[source.index("if loss_type.lower() == 'dr_grpo':\\n\"\n") :][:800]
    assert "if scale_rewards == None:" in dr and "scale_rewards = True" in dr
    assert "scale_rewards == 'group'" in dr and "scale_rewards = False" in dr
    # Temperatures at or above 10 are refused (mapping.check_grpo says so first).
    assert "elif temperature >= 10:" in source
