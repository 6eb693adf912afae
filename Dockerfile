# An AirKafka worker image. Untested here: these machines have no Docker engine.
FROM python:3.12-slim
WORKDIR /opt/airkafka
COPY setup.cfg pyproject.toml README.md ./
COPY airkafka_app ./airkafka_app
RUN pip install --no-cache-dir '.[worker]'
ENV AIRKAFKA_DATA_DIR=/var/lib/airkafka AIRKAFKA_WEB_BIND=0.0.0.0
VOLUME /var/lib/airkafka
EXPOSE 6066
CMD ["faust", "-A", "airkafka_app", "worker", "-l", "info"]
