"""Fixtures for the mlx-lm consumer tests.

These run in an environment with mlx-lm[cpu] and Hegelion core but no torch, so
only the tokenizer half of `hegelion_core.testing.tiny_models` is used: mlx-lm's
data loading needs a tokenizer, not model weights. Everything stays offline.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: a test that tries the network must fail.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402

from hegelion_core.records import DialecticTrace, TraceRecord  # noqa: E402
from hegelion_core.testing.tiny_models import build_tiny_tokenizer  # noqa: E402

# (instruction, thesis, antithesis, synthesis): short, so rows tokenize quickly.
# Twenty, so that `--valid-ratio 0.2` fills mlx-lm's default batch size of 4.
SAMPLE_TRACES: tuple[tuple[str, str, str, str], ...] = (
    ("Is free will real?", "We act on our own reasons.", "Our reasons have causes.",
     "Freedom is acting from reasons, caused or not."),
    ("Do markets work?", "Prices carry information.", "Prices can lie about harm.",
     "Markets work inside rules that make prices honest."),
    ("Where does knowledge come from?", "From experience.", "Logic holds before experience.",
     "Experience gives content and reason gives form."),
    ("Trust intuition or evidence?", "Intuition is fast.", "Intuition fails on numbers.",
     "Intuition raises questions; evidence answers them."),
    ("Is history driven by ideas?", "Ideas set what seems possible.",
     "Conditions decide which ideas spread.", "Ideas and conditions shape each other."),
    ("Can a good argument fail?", "Sound arguments convince.", "People weigh the speaker.",
     "Good arguments persuade when they earn trust."),
    ("Privacy or security?", "Security protects lives.", "Without privacy power grows.",
     "Security with limits keeps lives and freedom."),
    ("Fund need or curiosity?", "Fund urgent needs.", "Curiosity made the big advances.",
     "Fund both, since curiosity feeds what needs require."),
    ("Is change good?", "Change brings growth.", "Change destroys what worked.",
     "Good change keeps what worked and grows from it."),
    ("Should rules bend?", "Rules must be firm to be fair.", "Firm rules fail odd cases.",
     "Rules should be firm with a stated way to bend."),
    ("Is art useful?", "Art has no use and needs none.", "Art teaches and heals.",
     "Art is useful because it is not made for use."),
    ("Should we fear machines?", "Machines free us from toil.", "Machines can take control.",
     "Build machines we can check and stop."),
    ("Is tradition wise?", "Tradition stores tested habits.", "Tradition hides old wrongs.",
     "Keep traditions that still pass the test."),
    ("Are people selfish?", "People seek their own good.", "People give to strangers.",
     "Self-interest and care live in the same person."),
    ("Is math discovered?", "Math is found, like a continent.", "Math is built, like a game.",
     "We invent the rules and discover what follows."),
    ("Should cities grow?", "Cities create wealth.", "Cities crowd and pollute.",
     "Grow cities that stay green and affordable."),
    ("Is doubt a virtue?", "Doubt prevents error.", "Doubt can freeze action.",
     "Doubt well, then act on the best answer."),
    ("Do laws make people good?", "Laws shape habits.", "Good people need no laws.",
     "Laws guide habits that character then keeps."),
    ("Is speed better than care?", "Speed wins markets.", "Care prevents disasters.",
     "Move fast where mistakes are cheap, slowly elsewhere."),
    ("Can we know other minds?", "We only see behaviour.", "Empathy reaches inner life.",
     "We know other minds by inference and by sharing."),
)


def write_sample_traces(path: Path) -> Path:
    """Write `SAMPLE_TRACES` as a traces JSONL file (what ``hegelion generate`` writes)."""
    with path.open("wb") as fh:
        for instruction, thesis, antithesis, synthesis in SAMPLE_TRACES:
            trace = DialecticTrace(thesis=thesis, antithesis=antithesis, synthesis=synthesis)
            record = TraceRecord.build(instruction, trace)
            fh.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny tokenizer (no weights: building those needs torch)."""
    out = tmp_path_factory.mktemp("tiny-tokenizer")
    build_tiny_tokenizer().save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def mlx_tokenizer(tiny_tokenizer_dir: Path) -> Any:
    """The tokenizer as `mlx_lm.lora` gets it: a `TokenizerWrapper` loaded from disk."""
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def sample_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_traces(tmp_path_factory.mktemp("traces") / "traces.jsonl")


@pytest.fixture
def run_dataset(sample_traces: Path, tmp_path: Path) -> Callable[..., tuple[Result, Path]]:
    """``run_dataset(fmt, *extra_args) -> (result, out)``: ``hegelion dataset`` on the sample traces."""
    from hegelion_core.cli import cli

    def run(fmt: str, *extra_args: str) -> tuple[Result, Path]:
        out = tmp_path / (f"{fmt}-out" if fmt == "mlx" else f"{fmt}.jsonl")
        args = ["dataset", str(sample_traces), str(out), "--format", fmt, *extra_args]
        return CliRunner().invoke(cli, args, catch_exceptions=False), out

    return run


@pytest.fixture
def formatted(run_dataset: Callable[..., tuple[Result, Path]]) -> Callable[..., Path]:
    """``formatted(fmt, *extra_args) -> Path``: the output of a ``hegelion dataset`` run.

    Returns the output path (a directory for ``--format mlx``). Fails the test with
    the CLI's own output when the command does not succeed.
    """

    def run(fmt: str, *extra_args: str) -> Path:
        result, out = run_dataset(fmt, *extra_args)
        assert result.exit_code == 0, f"hegelion dataset --format {fmt} {extra_args} failed:\n{result.output}"
        assert out.exists(), f"hegelion dataset --format {fmt} {extra_args} wrote nothing at {out}"
        return out

    return run
