"""FrameSieve's cloud side: the inference endpoint the edge escalates to (`cloud.inference`), the router
Lambda behind the IoT rule (`cloud.router`), the results stores (`cloud.stores`), alert rules, the results
API and the local stack. It imports `models` and `contracts`, never `edge_agent`; the router path
(router, stores, alerts, awscalls, constants, exceptions) imports no numpy, onnxruntime or OpenCV."""
