"""``python -m portfolio_pipeline.cli``."""

import sys

from portfolio_pipeline.cli import main

sys.exit(main())
