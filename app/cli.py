"""The `clickfan` command: one entry point in front of every part.

Each part owns its commands (clickfan.compose.native.commands for the stack,
and so on). This module only names them, imports the one that runs (so
`clickfan status` or `clickfan --help` never loads Faust, aiohttp or
matplotlib), and turns ClickfanError into a message.
"""

from __future__ import annotations

import faulthandler
import importlib
import sys

import click

from clickfan import __version__
from clickfan.errors import ClickfanError
from clickfan.settings import SettingsError
from clickfan.supervision import stop_with_parent

# name -> (module:attribute, the one-line help shown by `clickfan --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("clickfan.compose.native.commands:up", "Start Kafka, Elasticsearch and HDFS natively."),
    "down": ("clickfan.compose.native.commands:down", "Stop every service; data is kept."),
    "status": ("clickfan.compose.native.commands:status", "Show every service and its health."),
    "start": ("clickfan.compose.native.commands:start", "Start one service (e.g. kafka-2)."),
    "stop": ("clickfan.compose.native.commands:stop", "Stop one service (e.g. kafka-2)."),
    "serve": ("clickfan.compose.native.commands:serve", "Run one service in the foreground."),
    "ensure-topics": (
        "clickfan.compose.native.commands:ensure_topics",
        "Create the pipeline's topics unless they exist.",
    ),
    "secure-setup": ("clickfan.compose.native.commands:secure_setup", "Secure profile setup."),
    "fetch": ("clickfan.compose.native.commands:fetch", "Download the server programs."),
    "kafka": ("clickfan.compose.native.commands:kafka", "Run one of Apache Kafka's own tools."),
    "hdfs": ("clickfan.compose.native.commands:hdfs", "Run Hadoop's own `hdfs` command."),
    "produce": ("clickfan.generators.commands:produce", "Produce click events to Kafka."),
    "worker": ("clickfan.streams.commands:worker", "Run the Elasticsearch or HDFS worker."),
    "monitor": ("clickfan.lagmon.commands:monitor", "Serve Burrow's v3 API and metrics."),
    "lag": ("clickfan.lagmon.commands:lag", "Consumer lag with Burrow's statuses."),
    "replay": ("clickfan.experiments.replay_command:replay", "Reset a group's offsets."),
    "experiment": ("clickfan.experiments.commands:experiment", "Run the experiments."),
    "demo": ("clickfan.app.demo:demo", "The whole pipeline, live."),
    "dashboard": ("clickfan.app.dashboard.commands:dashboard", "Serve the live web page."),
    "soak": ("clickfan.experiments.soak:soak", "Traffic, hostile records and faults; count all."),
    "dlq": ("clickfan.streams.dlq_commands:dlq", "Dead letters: list, show, re-drive, purge."),
    "analyze": ("clickfan.analysis.commands:analyze", "Ask Elasticsearch and Spark; compare."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when one of them runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name][0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # from the table, so that --help imports nothing
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clickfan")
def cli() -> None:
    """Kafka fan-out on real systems: click logs -> Kafka -> Elasticsearch and HDFS."""


def main() -> None:
    # a crash inside a C library (librdkafka, pyarrow) prints every thread's Python stack
    # to stderr (a worker's log) before the process dies, instead of a bare -11
    faulthandler.enable()
    stop_with_parent()
    try:
        code = cli.main(standalone_mode=False)
        if isinstance(code, int):
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (ClickfanError, SettingsError) as exc:
        click.secho(f"clickfan: {exc}", fg="red", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
