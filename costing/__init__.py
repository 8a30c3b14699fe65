"""What the cloud side costs: the price file, the bench summary's figures the model reads, and the planner that
picks the cheapest teacher backend for a fleet. Pure Python (pydantic, PyYAML): both `edge-agent cost` and
`framesieve-cloud plan` use it, and neither may import the other."""
