"""``python -m iobench.loadgen --target HOST:PORT [...]``: the load generator on its own."""

import argparse
import sys

from iobench.common.errors import run_command
from iobench.loadgen.cli import add_arguments, cmd_load


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m iobench.loadgen",
                                     description="Drive a server with load and measure latency.")
    add_arguments(parser)
    return run_command(cmd_load, parser.parse_args(), prog="python -m iobench.loadgen")


if __name__ == "__main__":
    sys.exit(main())
