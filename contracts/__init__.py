"""Types shared by the edge agent, the cloud side and the models: detections, labels, wire messages.

This package imports nothing of ours. `detections` needs numpy; `labels` (and the wire format, when it
lands) stay pure-Python so the Lambda can import them without numpy.
"""
