"""hegelion-unsloth: Unsloth QLoRA SFT, DPO and GRPO for Hegelion, on one NVIDIA GPU.

``hegelion_unsloth.trainer``: the ``unsloth`` trainer driver (light to import).
``hegelion_unsloth.mapping``: TrainConfig -> the keyword arguments of Unsloth's and TRL's
calls, pure, so CI checks everything up to the GPU boundary.
``hegelion_unsloth.data``: Hegelion rows -> TRL rows (prompt/completion for
completion-only loss). ``hegelion_unsloth.gpu``: the CUDA check and the guarded
``import unsloth``. ``hegelion_unsloth._run``: the GPU side, imported only after both.

Nothing here imports torch or unsloth at import time: ``hegelion plugins`` imports
driver modules just to report their status, and ``import unsloth`` raises on a
machine without an accelerator.
"""

__version__ = "0.1.0"
