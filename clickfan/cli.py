"""The `clickfan` command: one entry point in front of every part.

Each part owns its commands (compose.native.commands for the stack, and so
on); this module only gathers them and turns ClickfanError into a message.
"""

from __future__ import annotations

import sys

import click

from clickfan import __version__
from clickfan.demo import demo
from clickfan.errors import ClickfanError
from clickfan.settings import SettingsError
from compose.native.commands import stack_commands
from experiments.commands import experiment
from experiments.replay_command import replay
from generators.commands import produce
from lagmon.commands import lag, monitor
from streams.commands import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clickfan")
def cli() -> None:
    """Kafka fan-out on real systems: click logs -> Kafka -> Elasticsearch and HDFS."""


for command in stack_commands:
    cli.add_command(command)
cli.add_command(monitor)
cli.add_command(lag)
cli.add_command(produce)
cli.add_command(replay)
cli.add_command(experiment)
cli.add_command(worker)
cli.add_command(demo)


def main() -> None:
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
