"""``qwen-data tokenize`` and ``qwen-data inspect``: text to megatron-core indexed datasets and back."""
