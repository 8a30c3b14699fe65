"""FrameSieve's cloud side: the inference endpoint the edge escalates to (`cloud.inference`), and later
the router Lambda and the results store. It imports `models` and `contracts`, never `edge_agent`."""
