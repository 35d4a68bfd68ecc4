"""A third-party stage kind (`shortlist`) and model scheme (`toy:`) for `hegelion run`."""
