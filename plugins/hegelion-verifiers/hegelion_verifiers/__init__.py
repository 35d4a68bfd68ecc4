"""Hegelion's dialectic (and Simplex calibration) as a verifiers environment.

verifiers finds an environment by its id: ``vf-eval hegelion-verifiers`` imports this
package and takes the `Taskset` and `Harness` subclasses it exports in ``__all__``.
"""

from hegelion_verifiers.harness import HegelionHarness
from hegelion_verifiers.taskset import HegelionTaskset

__version__ = "0.1.0"

__all__ = ["HegelionHarness", "HegelionTaskset"]
