# The clickfan app (producer, workers, demo view) for compose/docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clickfan ./clickfan
COPY compose ./compose
COPY generators ./generators
COPY streams ./streams
COPY sinks ./sinks
COPY lagmon ./lagmon
RUN pip install --no-cache-dir .
ENTRYPOINT ["clickfan"]
