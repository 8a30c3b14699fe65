# The sieve for landed video (landed/; README "The serverless path"): the gateway agent's pipeline and the
# router in one container image, on the AWS Lambda Python base image so that the same image runs as
#   - the sieve Lambda (SieveS3): command landed.handler.handler, which the base image's runtime client runs;
#   - the sieve's Fargate task (long segments, KVS workers): entry point /usr/bin/env, command
#     `framesieve-cloud sieve ...` (the stack's task definition sets both).
#
#   docker build -f infra/container/Dockerfile.sieve -t framesieve-sieve:0.1.0 .
#   docker tag / push to ACCOUNT.dkr.ecr.REGION.amazonaws.com/framesieve-sieve:0.1.0
#   aws s3 cp my-sieve.yaml s3://LANDED-BUCKET/framesieve/sieve.yaml      # config/sieve.example.yaml
#   framesieve-cloud deploy --stack NAME --param SieveS3=true --param SieveImageUri=...:0.1.0 \
#     --param LandedBucket=LANDED-BUCKET --param LandedPrefix=cams/ --param SieveSubnets=subnet-...
#
# (Not built by the tests: no Docker engine runs on the development machines. The same handler and command run
# in tests/landed against moto_server.)
FROM public.ecr.aws/lambda/python:3.12

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml setup.py README.md /tmp/src/
COPY config /tmp/src/config
COPY contracts /tmp/src/contracts
COPY costing /tmp/src/costing
COPY models /tmp/src/models
COPY edge_agent /tmp/src/edge_agent
COPY cloud /tmp/src/cloud
COPY landed /tmp/src/landed
# the gateway's extra (onnxruntime, OpenCV, PyAV, onnx) and the cloud's (boto3); then the shipped student,
# derived once at build time into the image (a Lambda can write only /tmp), so no container fetches anything
RUN pip install --target "${LAMBDA_TASK_ROOT}" '/tmp/src[edge,cloud]' && rm -rf /tmp/src
ENV FRAMESIEVE_CACHE=/opt/framesieve-cache PYTHONPATH=${LAMBDA_TASK_ROOT}
RUN python -c "from models.student.derived import ensure_derived_student; print(ensure_derived_student())"
# TeacherBackend=lambda: the teacher answers inside the sieve (manifest.json + the teacher ONNX, as for
# Dockerfile.lambda); with a SageMaker teacher leave build/lambda-model empty (mkdir -p build/lambda-model)
COPY build/lambda-model ${LAMBDA_TASK_ROOT}/model
ENV FRAMESIEVE_TEACHER_THREADS=1
CMD ["landed.handler.handler"]
