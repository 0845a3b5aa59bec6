"""Fused RMSNorm, SwiGLU and rotary kernels (C++ for CPU, CUDA for GPU), forward and backward.

``qwen_kernels.functions`` has the differentiable ops, ``qwen_kernels.lmhead`` the fused output layer and
loss, ``qwen_kernels.build`` compiles them; see docs/kernels.md. The package imports nothing of the
project above it: the megatron-core modules that use these ops live with the model
(``pretrain.model.fused_modules``), the benchmark with the others (``pretrain.bench.kernels``).
"""

# The compiled extension qwen_kernels._C links against torch's libraries (libc10, libtorch); importing
# torch first loads them, so `import qwen_kernels._C` works on its own.
import torch  # noqa: F401
