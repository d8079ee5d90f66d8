# The clickfan app (producer, workers, demo view) for compose/docker-compose.yml.
# The whole project is copied (.dockerignore leaves out the venv, git, caches,
# reports and tests), so a new package can never be left out of the image:
# pyproject.toml alone decides what `pip install .` puts under clickfan.
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
ENTRYPOINT ["clickfan"]
