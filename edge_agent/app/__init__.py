"""The running agent: `Agent` (agent.py) drives one `CameraPipeline` per camera (camera.py) over batches of
frames, with the parts `wiring.py` builds. Only the command line, the demo and the bench import this
package; fleet management and specialization see the agent through `edge_agent.control.AgentPort`."""

from edge_agent.app.agent import Agent

__all__ = ["Agent"]
