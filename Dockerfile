# Qwen pretraining image. One recipe for two kinds of base image:
# - an NGC PyTorch image (the default): torch, CUDA toolkit, NCCL, apex, flash-attn and
#   transformer-engine come built for it; the GPU image;
# - a Debian/Ubuntu image with Python 3.10+ (debian:bookworm with python3, python:3.11-slim, ...):
#   a CPU image, torch installed from a wheel directory in the build context.
# The build stage installs the project into a virtual environment that sees the base image's
# packages (so its torch stays) and compiles the fused kernels; the final stage is the base image
# plus that environment and the sources: no compilers it lacked, wheels or caches.
# docker/install.sh says what each build argument does; docs/launching.md how to build and run.
#
#   docker build -t qwen-pretrain .
#   docker build --build-arg BASE_IMAGE=debian-python:bookworm --build-arg WHEEL_DIR=wheels -t qwen-pretrain:cpu .
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.06-py3
ARG VENV=/opt/qwen-pretrain

FROM ${BASE_IMAGE} AS build
ARG VENV
# A directory of wheels inside the build context (torch for a base without it; everything, with
# PIP_NO_INDEX=1, for an air-gapped build). PIP_INDEX_URL points pip at a mirror.
ARG WHEEL_DIR=""
ARG PIP_NO_INDEX
ARG PIP_INDEX_URL
# A docker build sees no GPU, so name the architectures the CUDA kernels are compiled for
# (8.0 A100, 9.0 H100/H200, +PTX for newer GPUs); left unset, torch would compile for every architecture it knows.
ARG TORCH_CUDA_ARCH_LIST="8.0;9.0+PTX"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /workspace/qwen-pretrain
COPY . .
RUN sh docker/install.sh

FROM ${BASE_IMAGE}
ARG VENV
COPY --from=build ${VENV} ${VENV}
COPY --from=build /workspace/qwen-pretrain /workspace/qwen-pretrain
ENV PATH=${VENV}/bin:${PATH} \
    PYTHONUNBUFFERED=1
WORKDIR /workspace/qwen-pretrain
CMD ["qwen-train", "--help"]
