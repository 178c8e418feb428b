# The SafeAlign trainer image (the `trainer` and `tensorboard` services of docker-compose.yml).
# CPython 3.11: the carla==0.9.16 client wheel exists for CPython 3.10-3.12 (manylinux).
FROM python:3.11-slim

# torch is installed first and pinned, as `make` does (Makefile TORCH_SPEC). The default is the CPU build from
# PyTorch's CPU wheel index: PyPI's Linux torch wheel is the CUDA build (several GB of nvidia-* wheels), useless to a
# trainer without a GPU. On a GPU host build with TORCH_INDEX empty (PyPI's CUDA build) or a CUDA index, e.g.
#   docker compose -f docker-compose.yml -f docker-compose.gpu.yml build trainer      (README)
#   docker build --build-arg TORCH_INDEX= -t safealign:latest .
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends libjpeg62-turbo libtiff6 libgomp1 \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 safealign
WORKDIR /work
RUN pip install ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY envs ./envs
COPY rewards ./rewards
COPY counterfactual ./counterfactual
COPY agents ./agents
COPY experiments ./experiments
COPY benchmarks ./benchmarks
RUN pip install -e '.[carla,scale]' && mkdir -p /work/outputs && chown -R safealign /work
# Creates and chowns /work/outputs (a root-owned ./outputs that Docker made for the bind mount) when started as root,
# then drops to the host user (SAFEALIGN_UID/SAFEALIGN_GID) or safealign: docker/entrypoint.py.
COPY docker/entrypoint.py /usr/local/bin/safealign-entrypoint
RUN chmod 0755 /usr/local/bin/safealign-entrypoint
USER safealign

ENTRYPOINT ["safealign-entrypoint"]
CMD ["python", "-m", "experiments.run", "env=carla"]
