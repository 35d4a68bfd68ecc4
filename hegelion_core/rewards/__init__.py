"""Rewards for reinforcement learning on the dialectic (GRPO in TRL and Unsloth,
verifiers environments): see docs/rl.md."""

from hegelion_core.rewards.config import RewardSpec

__all__ = ["RewardSpec"]
