#!/bin/sh
# The image's entrypoint, as TensorFlow Serving's: serves ${MODEL_BASE_PATH}/${MODEL_NAME} on
# gRPC 8500 and REST 8501 and appends the container's arguments (a repeated flag: the last one
# wins). With --model_config_file among them, the config's models are served instead.
# `--healthcheck` asks the REST port's /v2/health/ready (the image's HEALTHCHECK).
set -eu
MODEL_NAME="${MODEL_NAME:-model}"
MODEL_BASE_PATH="${MODEL_BASE_PATH:-/models}"
REST_PORT="${MSERVE_REST_PORT:-8501}"
GRPC_PORT="${MSERVE_GRPC_PORT:-8500}"

if [ "${1:-}" = "--healthcheck" ]; then
    exec python3 -c "import sys, urllib.request
try:
    sys.exit(urllib.request.urlopen('http://127.0.0.1:$REST_PORT/v2/health/ready', timeout=2).status != 200)
except OSError:
    sys.exit(1)"
fi

for arg in "$@"; do
    case "$arg" in
        --model_config_file|--model_config_file=*)
            exec mserve serve --port="$GRPC_PORT" --rest_api_port="$REST_PORT" "$@" ;;
    esac
done
exec mserve serve --port="$GRPC_PORT" --rest_api_port="$REST_PORT" --model_name="$MODEL_NAME" \
    --model_base_path="$MODEL_BASE_PATH/$MODEL_NAME" "$@"
