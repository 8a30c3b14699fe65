"""The sieve for landed video: the gateway agent's pipeline run in the cloud, over video that already lands in
AWS (S3 objects, Kinesis Video Streams), escalating through the router the IoT rule invokes and writing to the
same results store. It composes `edge_agent` (the pipeline) and `cloud` (the router, the store), which never
import each other, so it sits above both (pyproject.toml, import-linter).

config.py (the YAML), transport.py (escalations through the router, in process), run.py (one run), s3.py
(landed objects), kvs.py (GetImages), kvs_standin.py (a local stand-in of the KVS media API), handler.py (the
Lambda), cli.py (`framesieve-cloud sieve`).
"""
