"""`clickfan up|down|status|start|stop|fetch|kafka|hdfs`: the native stack's commands."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from clickfan import kafka_client
from clickfan.compose.native import hosts, stack, tools
from clickfan.settings import load

err = Console(stderr=True)


@click.command()
@click.option("--fresh", is_flag=True, help="Remove all data first (as `down --wipe`).")
@click.option(
    "--extra-cluster",
    is_flag=True,
    help="Also start a second, one-broker Kafka cluster (for the multi-cluster lag view).",
)
@click.option(
    "--with",
    "with_",
    metavar="NAMES",
    help="Also start message brokers beside the stack: rabbitmq, redis (comma-separated).",
)
@click.option(
    "--hosts",
    "as_hosts",
    is_flag=True,
    help="The three brokers as three hosts: network namespaces on a bridge, 198.18.N.11-13 (root).",
)
@click.option(
    "--kafka-only",
    is_flag=True,
    help="Only the three brokers, no Elasticsearch or HDFS.",
)
@click.option(
    "--secure",
    is_flag=True,
    help="The secure profile: SASL_SSL Kafka with ACLs, TLS and credentials everywhere "
    "(certificates and passwords under <home>/secure). Same as CLICKFAN_SECURE=1.",
)
def up(
    fresh: bool,
    extra_cluster: bool,
    with_: str | None,
    as_hosts: bool,
    kafka_only: bool,
    secure: bool,
) -> None:
    """Start Kafka (3 brokers, KRaft), Elasticsearch and HDFS natively, and wait until healthy."""
    settings = load()
    if secure:
        settings = settings.with_overrides(secure=True)
    if settings.secure and (as_hosts or extra_cluster):
        raise click.UsageError("--secure does not go with --hosts or --extra-cluster yet")
    optional = stack.parse_with(with_) if with_ is not None else ()
    stack.check_installed(settings, optional)
    if as_hosts:
        hosts.check_can_run()
    if fresh:
        hosts.down(settings, err)
        stack.down(settings, err, wipe=True)
    if as_hosts:
        hosts.up(settings, err, kafka_only)
        stack.up_optional(settings, optional, err)
        return
    hosts.clean_leftovers(settings, err)
    started = stack.up(settings, err, extra_cluster=extra_cluster, kafka_only=kafka_only)
    started += stack.up_optional(settings, optional, err)
    if started:
        statuses, cluster = stack.status(settings)
        err.print(stack.status_table(statuses))
        if settings.secure:
            err.print(
                f"Kafka (SASL_SSL): one client file per user in "
                f"{kafka_client.clients_dir(settings)} (--kafka-config FILE, or "
                "`clickfan kafka TOOL --command-config FILE`)"
            )
        err.print(
            f"Kafka: {settings.bootstrap_servers}   Elasticsearch: {settings.es_url}   "
            f"HDFS: {settings.webhdfs_url} (WebHDFS), "
            f"hdfs://{settings.host}:{settings.namenode_rpc_port}"
        )


@click.command()
@click.option("--wipe", is_flag=True, help="Also remove all data (topics, indices, HDFS files).")
def down(wipe: bool) -> None:
    """Stop every service (gracefully, then forcefully after a timeout). Data is kept."""
    settings = load()
    hosts.down(settings, err)  # the --hosts brokers and their network, when there are any
    stack.down(settings, err, wipe=wipe)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Show every service: pid, ports, health, memory, log. Exit code 0 only if all are healthy."""
    settings = load()
    stack.activate_admin(settings)
    if hosts.active(settings):
        statuses, cluster = hosts.status(settings)
    else:
        statuses, cluster = stack.status(settings)
    report = stack.status_json(statuses, cluster)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        Console().print(stack.status_table(statuses))
        click.echo(f"kafka cluster: {cluster.detail}; total RSS {report['total_rss_mb']:.0f} MB")
    sys.exit(0 if report["healthy"] else 1)


@click.command()
@click.argument("service")
def start(service: str) -> None:
    """Start one service (e.g. kafka-2) and wait until it is healthy."""
    settings = load()
    stack.activate_admin(settings)
    stack.start_one(settings, service, err)


@click.command()
@click.argument("service")
def stop(service: str) -> None:
    """Stop one service (e.g. kafka-2); the others keep running."""
    stack.stop_one(load(), service, err)


@click.command()
def fetch() -> None:
    """Download the server programs from Maven Central into the cache (done by `up` too)."""
    stack.fetch_artifacts(load(), err)


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],
    }
)
@click.argument("tool")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kafka(tool: str, args: tuple[str, ...]) -> None:
    """Run one of Apache Kafka's own tools, e.g. `clickfan kafka kafka-topics --list ...`."""
    tools.exec_tool(tools.kafka_tool_argv(load(), tool, list(args)))


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],
    }
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def hdfs(args: tuple[str, ...]) -> None:
    """Run Hadoop's own `hdfs` command, e.g. `clickfan hdfs dfs -ls -R /`."""
    tools.exec_tool(tools.hdfs_argv(load(), list(args)))


@click.command()
@click.argument("service")
def serve(service: str) -> None:
    """Run one service (e.g. kafka-2) in the foreground: a container's main process."""
    stack.serve(load(), service, err)


@click.command("ensure-topics")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=0,
    help="Seconds to wait for every broker to join the cluster first.",
)
@click.option(
    "--kafka-config",
    type=click.Path(dir_okay=False),
    help="Kafka client properties (Java format: SASL, TLS). Default: CLICKFAN_KAFKA_CONFIG.",
)
def ensure_topics(wait_s: float, kafka_config: str | None) -> None:
    """Create the pipeline's topics unless they exist (as `up` does)."""
    settings = kafka_client.use(load(), "admin", kafka_config)
    stack.wait_for_brokers(settings, wait_s, err)
    stack.ensure_topics(settings, err, bootstrap=kafka_client.bootstrap(settings))


@click.command("secure-setup")
@click.option(
    "--files",
    "files_only",
    is_flag=True,
    help="Only the CA, certificates, passwords and client files (before any service starts).",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=0,
    help="Seconds to wait for the brokers and HDFS first.",
)
def secure_setup(files_only: bool, wait_s: float) -> None:
    """The secure profile for services run one by one (`clickfan serve`, compose.secure.yaml).

    With --files, before the services: what they read (certificates, passwords). Then,
    once they answer: the topics, the pipeline's ACLs and the archiver's HDFS folder.
    """
    settings = load()
    if not settings.secure:
        raise click.UsageError("secure-setup is for the secure profile: set CLICKFAN_SECURE=1")
    if files_only:
        stack.prepare_secure_files(settings)
        err.print(f"secure profile files in {settings.home / 'secure'}")
    else:
        stack.secure_setup(settings, err, wait_s)
