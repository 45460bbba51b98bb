"""Model formats: llamacode checkpoints, Hugging Face Llama safetensors and GGUF; quantization.

numpy, gguf, safetensors and sentencepiece only: nothing here imports torch.
"""
