"""Tests of the qwen-data tools."""
