"""hegelion-gguf: local GGUF models for Hegelion.

``hegelion_gguf.teacher``: the ``llama-cpp`` teacher (llama-cpp-python, in-process).
The GGUF exporter (HF -> GGUF, quantization, Ollama Modelfile) will live beside it in
``hegelion_gguf.export``. Nothing heavy is imported here: ``hegelion plugins`` imports
driver modules just to report their status.
"""

__version__ = "0.1.0"
