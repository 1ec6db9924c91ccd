# One image for the web app (gunicorn), the Celery workers and beat.
# For GPU workers, build with a CUDA wheel of torch: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VAR_DIR=/data OMP_NUM_THREADS=1
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends libpq5 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --extra-index-url "$TORCH_INDEX" -r requirements.txt
COPY . .
# Static files are collected at build time and served by WhiteNoise.
RUN DEBUG=false SECRET_KEY=build-only-collectstatic-key-0123456789-abcdefghijklmnop \
    python manage.py collectstatic --noinput -v0

RUN useradd --create-home runwise && mkdir -p /data /mlflow && chown runwise /data /mlflow
USER runwise
EXPOSE 8000
CMD ["gunicorn", "-c", "webapp/gunicorn.conf.py", "webapp.wsgi"]
