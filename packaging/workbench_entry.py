"""Entry point of the standalone bundle: the same ``workbench`` command as ``pip install`` gives."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()   # data-loader worker processes re-enter here in a bundle
    from workbench.cli import main
    sys.exit(main())
