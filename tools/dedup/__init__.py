"""``qwen-data dedup``: exact and MinHash/LSH deduplication, built on ``tools.stage``."""
