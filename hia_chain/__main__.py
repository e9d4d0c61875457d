"""``python -m hia_chain``: the ``hia-chain`` command, without the console script on PATH."""

import sys

from hia_chain.cli import main

if __name__ == "__main__":  # importing this module (a module walk) runs nothing
    sys.exit(main())
