"""`python -m edge_agent.cli`: how the specialization loop starts its trainer and tests start the agent."""

import sys

from edge_agent.cli import main

sys.exit(main())
