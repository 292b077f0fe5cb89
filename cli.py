"""The repository's entry point: `python cli.py ...` runs the envmatrix command line.

The command line itself lives in `envmatrix/cli/`; this file is not installed (the installed
`envmatrix` script and `python -m envmatrix` call the same `main`).
"""

import sys

from envmatrix.cli import main

if __name__ == "__main__":
    sys.exit(main())
