"""Per-camera specialization on the gateway: the loop that collects the teacher's answers, fine-tunes,
decides champion/challenger and rolls a promoted student out through the agent's port (control.py); the
guard that rolls it back lives with the other student checks in edge_agent/students/."""
