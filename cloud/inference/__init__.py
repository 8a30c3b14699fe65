"""The SageMaker-compatible inference server (`cloud.inference.server`): GET /ping, POST /invocations.

Kept import-free so `python -m cloud.inference.server` runs the module once, not twice.
"""
