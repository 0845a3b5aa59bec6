"""Data tools: the ``qwen-data`` stages that turn raw text into megatron indexed datasets."""
