"""Fused RMSNorm, SwiGLU and rotary kernels (C++ for CPU, CUDA for GPU)."""
