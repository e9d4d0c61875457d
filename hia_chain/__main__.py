"""``python -m hia_chain``: the ``hia-chain`` command without the console script on PATH.

The same as ``python -m hia_chain.cli`` (which the server launcher runs), whose
``__main__`` it runs, so the entry point is written once.
"""

import runpy

if __name__ == "__main__":  # importing this module (a module walk) runs nothing
    runpy.run_module("hia_chain.cli", run_name="__main__", alter_sys=True)
