"""The sieve's environment variable names, in one place (the router's own are in cloud/constants.py)."""

CONFIG = "FRAMESIEVE_SIEVE_CONFIG"  # the sieve config: a path in the image, or s3://bucket/key
CLUSTER = "FRAMESIEVE_SIEVE_CLUSTER"  # the ECS cluster long segments are handed to (empty: never hand off)
TASK_DEFINITION = "FRAMESIEVE_SIEVE_TASK_DEFINITION"
SUBNETS = "FRAMESIEVE_SIEVE_SUBNETS"  # comma-separated, for the Fargate task's awsvpc network
SECURITY_GROUPS = "FRAMESIEVE_SIEVE_SECURITY_GROUPS"
CONTAINER = "FRAMESIEVE_SIEVE_CONTAINER"  # the task definition's container name
DEFAULT_CONTAINER = "sieve"
WORK_DIR = "FRAMESIEVE_SIEVE_WORK_DIR"  # where objects are downloaded (default: the temp dir, /tmp in a Lambda)
