"""Data: what a trace file holds and what becomes of it, up to the training dataset.

`jsonl` reads and writes the files (file:line errors, atomic outputs, line-atomic
appends), `parsing` reads a teacher's free-form trace, `traces` reads trace files of any
shape, `quality` says which answers are degenerate (never data), `curate/` filters trace
files, `prompt_sources/` and `formatters/` are core's built-in drivers (prompts in, rows
out), and `dataset` writes a formatted dataset with its manifest and card. The record
schemas themselves are `hegelion_core.records`, shared by every role.
"""
