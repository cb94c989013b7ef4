import sys

from upgrade_gate_sample.cli import main

sys.exit(main())
