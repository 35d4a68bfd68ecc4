"""hegelion-mlx: Hegelion's trainers on MLX, through mlx-lm's tuner.

``mlx``      LoRA SFT (``hegelion_mlx.trainer.MLXTrainer``)
``mlx-scu``  the same with the Shannon Control Unit's penalty in the loss
             (``hegelion_mlx.trainer.MLXSCUTrainer``)

Nothing heavy is imported here: ``hegelion plugins`` imports driver modules just to
report their status, and mlx is imported only when a trainer runs.
"""

__version__ = "0.1.0"
