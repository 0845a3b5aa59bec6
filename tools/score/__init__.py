"""Model-based scoring blocks (perplexity, quality classifier, offensive words) and ``qwen-data score``."""
