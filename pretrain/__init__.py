"""Qwen (v1) pretraining on megatron-core and DeepSpeed.

Layers: ``config`` (typed settings) -> ``model`` (Qwen layer spec, GPTModel builder) ->
``parallel`` (process groups, CPU execution layer) -> ``data`` (indexed datasets) ->
``training`` (DeepSpeed engine, loop, metrics) -> ``checkpoint`` -> ``cli``.
"""

import warnings

__version__ = "0.1.0"

# megatron-core warns at import that Transformer Engine and Apex are absent. Here they are optional
# extras, used when installed, so on a machine without them the warning is noise that buries the
# one-line errors of every command.
warnings.filterwarnings("ignore", message=r".*(Transformer Engine|Apex).*not installed", category=UserWarning)
