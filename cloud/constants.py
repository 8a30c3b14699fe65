"""Every environment variable the cloud side reads, in one place, with its default.

The router Lambda is configured only through these (CloudFormation sets them); `framesieve-cloud local`
and the tests set the same names, so there is one configuration path, not two.
"""

from __future__ import annotations

# Where results, alert cooldowns and dead letters live: "dynamodb://TABLE" or "sqlite:///path/to/file".
STORE_URL = "FRAMESIEVE_STORE"
DEFAULT_STORE_URL = "sqlite:///tmp/framesieve-results.sqlite"
# When a result row is written: "every" escalation, or only on a "change" of the labels a camera sees
# (or an alert). "change" trades the per-verdict DynamoDB write for one read; a repeated delivery of an
# unchanged verdict may then reach the endpoint again, but still makes no row, alert or S3 object twice.
STORE_WRITES = "FRAMESIEVE_STORE_WRITES"
DEFAULT_STORE_WRITES = "every"
# Days a result row is kept (DynamoDB TTL attribute `expires_at`; SQLite purges on open).
RETENTION_DAYS = "FRAMESIEVE_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30

# The SageMaker endpoint (the teacher). boto3 itself reads AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME.
ENDPOINT_NAME = "FRAMESIEVE_ENDPOINT_NAME"
DEFAULT_ENDPOINT_NAME = "framesieve-teacher"
ENDPOINT_ATTEMPTS = "FRAMESIEVE_ENDPOINT_ATTEMPTS"  # invocations tried before the escalation is dead-lettered
DEFAULT_ENDPOINT_ATTEMPTS = 3
ENDPOINT_BACKOFF_S = "FRAMESIEVE_ENDPOINT_BACKOFF_S"  # first retry delay; doubled each time, with jitter
DEFAULT_ENDPOINT_BACKOFF_S = 0.2
ENDPOINT_TIMEOUT_S = "FRAMESIEVE_ENDPOINT_TIMEOUT_S"
DEFAULT_ENDPOINT_TIMEOUT_S = 20.0

# Champion/challenger (cloud/ab/, cloud/router/shadow.py): the endpoint's production variants, by name, and the
# share of escalations (0..1, by message id) also sent to the variant that did not answer (TargetVariant). The
# shadow's answer is stored beside the served one and decides nothing. Empty / 0: no shadow calls.
AB_VARIANTS = "FRAMESIEVE_AB_VARIANTS"  # comma-separated, e.g. "champion,challenger"
SHADOW_SHARE = "FRAMESIEVE_SHADOW_SHARE"
DEFAULT_SHADOW_SHARE = 0.0

# Training data: the crops and the teacher's labels of the captured escalations.
TRAINING_BUCKET = "FRAMESIEVE_TRAINING_BUCKET"  # empty: no capture
TRAINING_PREFIX = "FRAMESIEVE_TRAINING_PREFIX"
DEFAULT_TRAINING_PREFIX = "training-data/"
TRAINING_SAMPLE_RATE = "FRAMESIEVE_TRAINING_SAMPLE_RATE"  # share of escalations kept, 0..1, by message id
DEFAULT_TRAINING_SAMPLE_RATE = 1.0
TRAINING_KEEP = "FRAMESIEVE_TRAINING_KEEP"  # informative: only what teaches something (tiered); all: every one
DEFAULT_TRAINING_KEEP = "informative"
# Where kept records go: "s3", one gzip object per escalation or gateway batch, tagged with its tier (the
# default: nothing else to create, and what the local stack uses); or "firehose", a record per line through a
# Kinesis Data Firehose delivery stream per lifecycle, packed by Firehose into large objects under
# TRAINING_PACKED_PREFIX (the CloudFormation stack's choice: objects large enough for Glacier Instant Retrieval).
TRAINING_SINK = "FRAMESIEVE_TRAINING_SINK"
DEFAULT_TRAINING_SINK = "s3"
TRAINING_SINKS = ("s3", "firehose")
# The delivery stream's name, {lifecycle} standing for each of contracts.training.LIFECYCLES (audit, training)
TRAINING_STREAM = "FRAMESIEVE_TRAINING_STREAM"
DEFAULT_TRAINING_STREAM = "framesieve-training-{lifecycle}"
# Where the streams deliver: <prefix><lifecycle>/YYYY/MM/DD/HH/<object> (Firehose's own time prefix); the
# router names the hour a record was sent in its row (the dashboard looks it up there)
TRAINING_PACKED_PREFIX = "FRAMESIEVE_TRAINING_PACKED_PREFIX"
DEFAULT_TRAINING_PACKED_PREFIX = "training-packed/"

# The verdict back to the gateway through IoT Core; {thing} is the thing name the IoT rule adds.
VERDICT_TOPIC = "FRAMESIEVE_VERDICT_TOPIC"  # empty: do not publish
DEFAULT_VERDICT_TOPIC = "framesieve/{thing}/verdicts"
IOT_DATA_ENDPOINT = "FRAMESIEVE_IOT_DATA_ENDPOINT"  # the account's data-ats endpoint; empty: boto3's default

# Alerts: an SNS topic and the rules (JSON text, or a file holding it).
ALERT_TOPIC_ARN = "FRAMESIEVE_ALERT_TOPIC_ARN"  # empty: no alerts
ALERT_RULES = "FRAMESIEVE_ALERT_RULES"
ALERT_RULES_FILE = "FRAMESIEVE_ALERT_RULES_FILE"
DEFAULT_ALERT_COOLDOWN_S = 300.0

# The event time is the edge's created_s only within this many seconds of the IoT rule's receive time;
# outside it (a wrong clock, or a gateway claiming another time) the receive time is used. It bounds what
# a message can do to alert cooldowns and to the rows of other times.
EVENT_WINDOW_S = "FRAMESIEVE_EVENT_WINDOW_S"
DEFAULT_EVENT_WINDOW_S = 300.0
# How long a router keeps a gateway's registry entry (a new or removed camera takes this long to count).
REGISTRY_CACHE_S = "FRAMESIEVE_REGISTRY_CACHE_S"
DEFAULT_REGISTRY_CACHE_S = 60.0

# Fields the IoT rule SQL adds (SELECT encode(*, 'base64') AS payload_b64, topic() AS topic, ...): the
# gateway's message travels base64-encoded beside them, so no key of its own can stand for a rule field.
EVENT_PAYLOAD = "payload_b64"
EVENT_TOPIC = "topic"
EVENT_THING = "thing_name"
EVENT_RECEIVED_MS = "received_ms"  # timestamp() in the rule; used when the message has no created_s
EVENT_CLIENT = "client_id"
RULE_FIELDS = (EVENT_TOPIC, EVENT_THING, EVENT_RECEIVED_MS, EVENT_CLIENT)

# The router's local stand-in for the IoT rule and the results API.
API_PORT = "FRAMESIEVE_API_PORT"
DEFAULT_API_PORT = 8081
