import logging
import os
import sys

from app.cli import main

code = main()
if sys.argv[1:2] == ["wait"]:
    # The hook's pod threads may still sit in long-polls; interpreter teardown
    # would cost ~40 ms of Helm's time for nothing, as nothing is left to clean.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
