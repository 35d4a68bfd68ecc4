"""Hegelion's Simplex Cognitive stages: seeded synthetic data for context, calibration
and belief revision, with eval items that carry their ground truth."""

__version__ = "0.1.0"
