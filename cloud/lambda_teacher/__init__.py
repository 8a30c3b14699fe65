"""The teacher inside the router Lambda (a container image on CPU): no SageMaker endpoint to keep running.

`handler.handler` is the router's handler with the endpoint call answered in-process; `emulator` is a small
Lambda Runtime API server so `awslambdaric` runs that handler as a real runtime process on this machine, and
`bench` measures its cold start, latency and GB-seconds per image that way."""
