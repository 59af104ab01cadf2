"""`python -m finephrase.cli ...`: the `finephrase` command."""

import sys

from finephrase.cli.main import main

sys.exit(main())
