"""`python -m envmatrix`: the same command line as the `envmatrix` script."""

import sys

from envmatrix.cli import main

if __name__ == "__main__":
    sys.exit(main())
