"""``qwen-data clean``: HTML extraction, Unicode normalization, language id, quality rules."""
