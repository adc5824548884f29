import sys

from iobench.cli import main

sys.exit(main())
