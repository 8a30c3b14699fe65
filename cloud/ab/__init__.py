"""Champion/challenger of the cloud model: the report comparing the endpoint's production variants from the
results store (`report`), the weight shift (`promote`), and the loopback stand-in of an endpoint with several
variants (`standin`)."""
