"""`python -m mdl.cli ...`: the same as `mdlc ...`."""

import sys

from mdl.cli import main

sys.exit(main())
