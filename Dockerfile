# Images for docker-compose.yml. Untested here: these machines have no Docker engine.
# airflow: Airflow 3.3.2 with KafkaExecutor. worker: the same, plus a Faust venv of its own,
# because Faust and Airflow cannot share one (croniter); workloads run with Airflow's python.
FROM apache/airflow:3.3.2-python3.12 AS airflow
COPY --chown=airflow setup.cfg pyproject.toml README.md /opt/airkafka/
COPY --chown=airflow airkafka_app /opt/airkafka/airkafka_app
RUN pip install --no-cache-dir '/opt/airkafka[executor]'

FROM airflow AS worker
RUN python -m venv /home/airflow/airkafka-venv \
 && /home/airflow/airkafka-venv/bin/pip install --no-cache-dir '/opt/airkafka[worker]'
ENV AIRKAFKA_AIRFLOW_PYTHON=/usr/local/bin/python \
    AIRKAFKA_DATA_DIR=/var/lib/airkafka \
    AIRKAFKA_WEB_BIND=0.0.0.0
USER root
RUN mkdir -p /var/lib/airkafka && chown airflow /var/lib/airkafka
USER airflow
EXPOSE 6066
# An init as PID 1 reaps what the worker's children leave behind, and forwards SIGTERM.
ENTRYPOINT ["/usr/bin/dumb-init", "--"]
CMD ["/home/airflow/airkafka-venv/bin/faust", "-A", "airkafka_app", "worker", "-l", "info"]
