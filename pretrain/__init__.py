"""Qwen (v1) pretraining on megatron-core and DeepSpeed.

Layers: ``config`` (typed settings) -> ``model`` (Qwen layer spec, GPTModel builder) ->
``parallel`` (process groups, CPU execution layer) -> ``data`` (indexed datasets) ->
``training`` (DeepSpeed engine, loop, metrics) -> ``checkpoint`` -> ``cli``.
"""

__version__ = "0.1.0"
