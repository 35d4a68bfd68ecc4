"""Hegelion's trainer on TRL: ``hegelion train --trainer trl``.

LoRA SFT and DPO through TRL's trainers, the Shannon Control Unit inside the loss,
QLoRA on NVIDIA GPUs, resume after a crash, and multi-process or multi-node runs
through ``accelerate launch``. Nothing heavy is imported here: ``hegelion plugins``
imports the driver module to list it.
"""

__version__ = "0.1.0"
