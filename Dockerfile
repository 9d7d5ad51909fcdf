# One image for the web, worker and poller services of docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    PROMETHEUS_MULTIPROC_DIR=/metrics

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are part of the image; the key is a throwaway so that no
# secret is baked in (the services get theirs from .env).
RUN SECRET_KEY=only-for-collectstatic DATABASE_URL= python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 1000 --home-dir /app shelly \
    && mkdir -p /data /metrics && chown shelly:shelly /data /metrics

USER shelly
EXPOSE 8000
CMD ["uvicorn", "shelly_site.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
