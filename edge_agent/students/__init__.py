"""Students on disk and on probation, below both fleet management and specialization: the model store
(installs, the active one across restarts), the health check on live frames, and the rollback guard
with its limits. Nothing here knows the agent; the agent and its commands use these."""
