"""hegelion-echo: the plugin author's guide's worked example."""
