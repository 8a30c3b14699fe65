"""Models: the teacher (accurate, cloud) and the student (distilled, edge), their runtime and manifests."""
