"""The ground floor: what both the data tools (``tools/``) and training (``pretrain/``) use.

It imports neither of them (nor ``qwen_kernels/``); tests/test_layers.py checks that.

- ``tokenizer``: the Qwen tokenizer (tiktoken, the vocabulary ``dashscope`` ships).
- ``indexed_check``, ``indexed_writer``: megatron ``.bin``/``.idx`` datasets, checked and written.
- ``atomic_write``: files that appear under their final name only when complete.
- ``dispatch``: sub-command dispatch and argparse types shared by the CLIs.
- ``dataclass_yaml``: YAML mappings into typed dataclasses, with one-line errors naming the key.
- ``records``: the document records the data tools read and ``qwen-generate`` prompts come in.
"""
