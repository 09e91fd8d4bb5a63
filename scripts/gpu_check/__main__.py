"""``python -m scripts.gpu_check``, as scripts/gpu_check.sh runs it: the driver, or (``--section``) one section in
its own process."""

import sys

from .driver import main

if __name__ == "__main__":
    sys.exit(main())
