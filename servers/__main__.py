"""``python -m iobench.servers MODEL [--host H] [--port P] [--param k=v ...]``."""

import argparse
import sys

from iobench.common.errors import run_command
from iobench.servers.harness import add_serve_arguments, cmd_serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m iobench.servers",
                                     description="Run one iobench server model.")
    add_serve_arguments(parser)
    return run_command(cmd_serve, parser.parse_args(), prog="python -m iobench.servers")


if __name__ == "__main__":
    sys.exit(main())
