"""`python -m pms_collector`: the collector alone, as a slot of the update launcher runs it."""

import sys

from pms_collector.main import main

sys.exit(main())
