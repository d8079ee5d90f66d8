"""A container's health check: `python3 -P -m clickfan.compose.native.healthcheck SERVICE`.

(-P: the image's working directory /src holds the source folder `clickfan/`, which
would shadow the installed package.)

Used by compose/docker-compose.secure.yml. The standard library only: a check runs
every few seconds on small machines, so it imports nothing of clickfan and starts no
JVM. Ports come from the same CLICKFAN_* variables the service itself reads, so a
check follows the stack wherever its ports are moved. On the secure profile
(CLICKFAN_SECURE=1) Elasticsearch is asked over TLS as its admin user: the password is
read from the secure home inside the container, never given on a command line.
Exit status 0 when healthy; otherwise 1 and one line saying why.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import sys
import urllib.request
from pathlib import Path

HOST = os.environ.get("CLICKFAN_HOST", "127.0.0.1")
SECURE = os.environ.get("CLICKFAN_SECURE", "").strip().lower() in ("1", "true", "yes", "on")
HOME = Path(os.environ.get("CLICKFAN_HOME", "/var/lib/clickfan-home"))


def port(name: str, default: str, index: int = 0) -> int:
    return int(os.environ.get(f"CLICKFAN_{name}", default).split(",")[index])


def get(url: str, headers: dict[str, str] | None = None, ca: Path | None = None) -> None:
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=4, context=context) as answer:
        answer.read()


def elasticsearch() -> None:
    where = f"{HOST}:{port('ES_PORT', '9200')}/_cluster/health?wait_for_status=yellow&timeout=3s"
    if not SECURE:
        get(f"http://{where}")
        return
    password = (HOME / "secure" / "elasticsearch" / "admin.password").read_text().strip()
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    get(f"https://{where}", {"Authorization": f"Basic {token}"}, HOME / "secure" / "ca.pem")


def check(service: str) -> None:
    if service.startswith("kafka-"):
        broker = int(service.removeprefix("kafka-")) - 1
        socket.create_connection((HOST, port("KAFKA_PORTS", "9092,9093,9094", broker)), 3).close()
    elif service == "elasticsearch":
        elasticsearch()
    elif service == "namenode":  # WebHDFS answers a directory listing
        get(
            f"http://{HOST}:{port('NAMENODE_HTTP_PORT', '9870')}"
            "/webhdfs/v1/?op=LISTSTATUS&user.name=clickfan"
        )
    elif service == "datanode":
        get(
            f"http://{HOST}:{port('DATANODE_HTTP_PORT', '9864')}"
            "/jmx?qry=Hadoop:service=DataNode,name=DataNodeInfo"
        )
    elif service == "monitor":
        get(f"http://{HOST}:{port('MONITOR_PORT', '8000')}/v3/kafka")
    else:
        raise ValueError(f"no health check for {service!r}")


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python3 -P -m clickfan.compose.native.healthcheck SERVICE", file=sys.stderr)
        return 2
    try:
        check(sys.argv[1])
    except (OSError, ValueError) as exc:  # URLError and ssl errors are OSErrors
        print(f"{sys.argv[1]}: not healthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
