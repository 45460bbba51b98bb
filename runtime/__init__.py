"""The engine: GGUF models on llama.cpp (llama-cpp-python), FIM prompt layout, generation.

Nothing here imports torch: the language server starts on this package alone.
"""

__version__ = "0.1.0"
