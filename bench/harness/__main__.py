"""`python3 -m harness` (with bench/ on the path, as scripts/bench runs it): main()'s status."""

import sys

from .cli import main

sys.exit(main())
