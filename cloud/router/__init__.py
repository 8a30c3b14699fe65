"""The router Lambda behind the IoT rule: validate an escalation, ask the teacher endpoint, store the
verdict, capture training data, alert, and publish the verdict back to the gateway.

`handler.handler` is the Lambda entry point; `routing.Router` does the work with plain functions.
Imports boto3 and our pure-Python packages only (no numpy, onnxruntime or OpenCV in the Lambda).
"""
