# One image for every service of compose/docker-compose.yml: Java, Python, clickfan, and
# the Kafka, Elasticsearch and Hadoop programs that Maven resolves for the native stack.
# Each container runs one service through the same launcher as `clickfan up`
# (`clickfan serve kafka-2`), so the Docker and the native stack share their
# configuration. The base is a build argument: where no registry is reachable,
# compose/docker/ready.sh makes debian:bookworm-slim with debootstrap.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

# Certificate authorities the host trusts beyond Debian's (a company proxy that
# inspects TLS, say): compose/docker/ready.sh copies them into compose/docker/ca/.
COPY compose/docker/ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless maven python3 python3-venv ca-certificates procps \
      rabbitmq-server redis-server \
 && rm -rf /var/lib/apt/lists/*

ENV PATH=/opt/clickfan/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    CLICKFAN_HOME=/var/lib/clickfan-home \
    CLICKFAN_CACHE_DIR=/opt/clickfan-artifacts
WORKDIR /src

# The Python dependencies first: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python3 -m venv /opt/clickfan \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt

# The whole project (.dockerignore leaves out what is not part of it), so the image
# can never miss a package; then the server programs, resolved by Maven as
# `clickfan up` does, into the image.
COPY . .
RUN pip install --no-cache-dir --no-deps . \
 && clickfan fetch \
 && rm -rf /root/.m2

ENTRYPOINT ["clickfan"]
CMD ["--help"]
