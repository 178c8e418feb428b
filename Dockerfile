# The SafeAlign trainer image (the `trainer` and `tensorboard` services of docker-compose.yml).
# CPython 3.11: the carla==0.9.16 client wheel exists for CPython 3.10-3.12 (manylinux).
FROM python:3.11-slim

# torch is installed first and pinned, as `make` does; on a GPU host pass e.g. --build-arg TORCH_SPEC=torch==2.13.0
ARG TORCH_SPEC="torch==2.13.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends libjpeg62-turbo libtiff6 libgomp1 \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 safealign
WORKDIR /work
COPY pyproject.toml README.md ./
COPY envs ./envs
COPY rewards ./rewards
COPY counterfactual ./counterfactual
COPY agents ./agents
COPY experiments ./experiments
COPY benchmarks ./benchmarks
RUN pip install "${TORCH_SPEC}" && pip install -e '.[carla]' && mkdir -p /work/outputs && chown -R safealign /work
USER safealign

CMD ["python", "-m", "experiments.run", "env=carla"]
