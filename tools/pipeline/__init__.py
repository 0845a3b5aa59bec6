"""``qwen-data pipeline``: clean -> exact dedup -> fuzzy dedup -> decontaminate -> tokenize from one YAML file."""
