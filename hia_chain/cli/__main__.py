"""``python -m hia_chain.cli``: the ``hia-chain`` command (the server launcher runs it so)."""

import sys

from hia_chain.cli import main

if __name__ == "__main__":  # importing this module (a module walk) runs nothing
    sys.exit(main())
