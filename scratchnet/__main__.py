"""``python -m scratchnet``: see scratchnet.cli."""

import sys

from scratchnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
