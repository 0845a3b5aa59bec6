"""The known-harmless messages of the libraries underneath, silenced here once for every command.

Each is matched by its exact text, so any other warning of the same library still shows:

- megatron-core's missing Transformer Engine / Apex import warnings: optional extras here;
- megatron-core's deprecation of its legacy dataset tokenizer: its ``GPTDataset`` in 0.16 still
  requires that class (``MegatronLegacyTokenizer``);
- megatron-core's ``cuda_graph_scope`` "full scope is deprecated": raised by its own default value
  of the field, whether or not CUDA graphs are used;
- megatron-core's "Unknown MLP type": logged for every MLP given as a ``ModuleSpec`` (ours), which
  it then builds as asked;
- torch's ``all_gather_into_tensor`` deprecation, raised from inside DeepSpeed's ZeRO-2 step;
- DeepSpeed's op banners ("... built successfully", "Time to load ... op"), printed to stdout by
  every process that loads a JIT-built op.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.machinery
import logging
import sys
import warnings

_WARNINGS = (
    (r".*(Transformer Engine|Apex).*not installed", UserWarning),
    (r"full scope is deprecated\. Use empty cuda_graph_scope", UserWarning),
    (r"`torch\.distributed\.all_gather_into_tensor` is deprecated", FutureWarning),
)
_LOG_MESSAGES = {
    "megatron.core.datasets.megatron_tokenizer": "You're using the legacy tokenizer system",
    "megatron.core.transformer.transformer_layer": "Unknown MLP type",
}
_DEEPSPEED_BANNERS = ("DeepSpeed deepspeed.ops.", "Time to load ")
_DEEPSPEED_BANNER_MODULES = ("deepspeed.comm.torch", "deepspeed.comm.ccl", "deepspeed.ops.op_builder.builder")


class _DropMessage(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def _quiet_print(*args, **kwargs) -> None:
    if args and isinstance(args[0], str) and args[0].startswith(_DEEPSPEED_BANNERS):
        return
    builtins.print(*args, **kwargs)


class _QuietPrintOnImport(importlib.abc.MetaPathFinder):
    """Gives the DeepSpeed modules that print banners a module-level ``print`` that drops them, as
    they are imported (DeepSpeed itself is not imported here: most commands never need it)."""

    def find_spec(self, name, path, target=None):
        if name not in _DEEPSPEED_BANNER_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def exec_quietly(module):
                module.print = _quiet_print  # module globals come before builtins
                exec_module(module)

            spec.loader.exec_module = exec_quietly
        return spec


def silence_known_noise() -> None:
    """Installs the filters; called once, from ``pretrain/__init__.py``."""
    for message, category in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for logger, start in _LOG_MESSAGES.items():
        logging.getLogger(logger).addFilter(_DropMessage(start))
    if not any(isinstance(finder, _QuietPrintOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietPrintOnImport())
