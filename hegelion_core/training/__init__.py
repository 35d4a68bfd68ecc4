"""Training: what every trainer shares. `config` is the one training config (and the
``init_adapter`` checks), `data` finds the files and their format, `metrics` logs and
plots the curves, `scu` is the Shannon Control Unit's math, and `grpo` is GRPO as every
TRL-based trainer runs it. The trainers themselves are plugins."""
