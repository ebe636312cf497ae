# One image for the stream worker, the offer API and the trainer (the command differs).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    OPENBLAS_NUM_THREADS=1 NBO_DATA_DIR=/var/lib/nbo

RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY domain ./domain
COPY decisioning ./decisioning
COPY recommender ./recommender
COPY simulator ./simulator
COPY adapters ./adapters
COPY bootstrap ./bootstrap
COPY streams ./streams
COPY services ./services
RUN pip install . \
 && useradd --system --uid 10001 nbo \
 && mkdir -p /var/lib/nbo && chown nbo /var/lib/nbo

USER nbo
EXPOSE 8000
CMD ["nbo", "api"]
