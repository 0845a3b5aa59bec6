"""``qwen-data decontaminate``: remove text that overlaps benchmark test sets by 13-grams (GPT-3's method)."""
