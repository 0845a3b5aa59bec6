"""Qwen (v1) pretraining on megatron-core and DeepSpeed.

Layers: ``config`` (typed settings) -> ``model`` (Qwen layer spec, GPTModel builder) ->
``parallel`` (process groups, CPU execution layer) -> ``data`` (indexed datasets) ->
``training`` (DeepSpeed engine, loop, metrics) -> ``checkpoint`` -> ``cli``.
"""

from pretrain.library_noise import silence_known_noise

__version__ = "0.1.0"

# Library messages that bury the one-line errors and summaries of every command (the list, and why
# each is harmless, is in library_noise); any other warning still shows.
silence_known_noise()
