# Tessera: top-level commands. `make demo` and `make check` are all the
# set-up a fresh Debian 12 machine needs (as root; see README.md).
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_LONG   ?= 120
CMAKE_FLAGS ?=
PREFIX      ?= /usr/local

.PHONY: all deps configure build test check asan fuzz fuzz-smoke fuzz-build demo demo-ckks bench \
        format format-check clean help malware-lab onnx-tests install deb torch-eval

all: build

help:
	@echo "make demo          encrypted inference end to end (Fashion-MNIST CNN, scripts/demo.sh)"
	@echo "make demo-ckks     the CKKS primitives demo (tessera demo ckks)"
	@echo "make check         all tests: normal build, ASan+UBSan build, fuzz smoke, format"
	@echo "make build         build libtessera and build/bin/tessera"
	@echo "make test          unit tests (normal build only)"
	@echo "make asan          unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make fuzz          run every fuzz target for FUZZ_LONG=$(FUZZ_LONG) seconds"
	@echo "make bench         benchmark programs (results: docs/BENCHMARKS.md)"
	@echo "make malware-lab   detector robustness lab: stand-in PE corpus (docs/MALWARE.md; installs nsis, mingw-w64, wine64)"
	@echo "make onnx-tests    every ONNX backend test of libonnx-testdata, plaintext and encrypted (docs/ONNX.md)"
	@echo "make torch-eval    PyTorch fixtures encrypted on 100 samples vs PyTorch's outputs (docs/INFERENCE.md)"
	@echo "make format        clang-format all sources in place"
	@echo "make install       install library, headers, tessera.pc, CMake package, command, man page"
	@echo "                   (PREFIX=$(PREFIX))"
	@echo "make deb           Debian packages libtessera0, libtessera-dev, tessera in build-deb/"

deps:
	@sh scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j$(JOBS)

test: build
	cd build && ctest --output-on-failure -j$(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTSR_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

fuzz-build: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTSR_FUZZ=ON -DTSR_OPENMP=OFF \
	  $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

fuzz-smoke: fuzz-build
	@sh scripts/fuzz.sh build-fuzz --smoke

fuzz: fuzz-build
	@sh scripts/fuzz.sh build-fuzz $(FUZZ_LONG)

format-check: deps
	@sh scripts/format.sh --check

format:
	@sh scripts/format.sh

check: format-check test asan fuzz-smoke
	@echo "make check: all passed"

demo: build
	@OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} sh scripts/demo.sh

demo-ckks: build
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} ./build/bin/tessera demo ckks

ONNX_TESTDATA ?= /usr/share/libonnx-testdata/data
onnx-tests: build
	./build/bin/tessera onnx-test --quiet --roundtrip $(ONNX_TESTDATA)/node \
	  $(ONNX_TESTDATA)/pytorch-operator $(ONNX_TESTDATA)/pytorch-converted
	./build/bin/tessera onnx-test --quiet --roundtrip --non-polynomial $(ONNX_TESTDATA)/node \
	  $(ONNX_TESTDATA)/pytorch-operator $(ONNX_TESTDATA)/pytorch-converted
	OMP_WAIT_POLICY=passive ./build/bin/tessera onnx-test --quiet --encrypted --table \
	  $(ONNX_TESTDATA)/node

# The PyTorch fixtures (tests/data/torch) encrypted on 100 fresh samples each, against
# PyTorch's own outputs (scripts/make_torch_fixtures.py --samples 100 rewrites the same
# seeded models and draws the samples): max abs error in docs/INFERENCE.md and, for the
# transformer (one sample per slot, about 11 GiB and a few minutes), docs/ONNX.md.
TORCH_EVAL ?= build/torch
torch-eval: build
	@sh scripts/deps.sh experiments
	/usr/bin/python3 scripts/make_torch_fixtures.py $(TORCH_EVAL) --samples 100
	OMP_WAIT_POLICY=passive ./build/bin/tessera predict $(TORCH_EVAL)/autoencoder.onnx \
	  --in $(TORCH_EVAL)/autoencoder_inputs.npy --expect $(TORCH_EVAL)/autoencoder_outputs.npy \
	  --count 100 --batch 100 --log-n 14 --quiet --out $(TORCH_EVAL)/autoencoder_encrypted.npy
	OMP_WAIT_POLICY=passive ./build/bin/tessera predict $(TORCH_EVAL)/cnn.onnx \
	  --in $(TORCH_EVAL)/cnn_inputs.npy --expect $(TORCH_EVAL)/cnn_outputs.npy \
	  --count 100 --batch 10 --log-n 14 --packing tiled --quiet --out $(TORCH_EVAL)/cnn_encrypted.npy
	./build/bin/tessera compile tests/data/torch/transformer.onnx --batch 100 --packing batch \
	  --calibrate $(TORCH_EVAL)/transformer_inputs.npy --quiet --force --out $(TORCH_EVAL)/transformer.plan
	OMP_WAIT_POLICY=passive ./build/bin/tessera predict $(TORCH_EVAL)/transformer.plan \
	  --in $(TORCH_EVAL)/transformer_inputs.npy --expect $(TORCH_EVAL)/transformer_outputs.npy \
	  --count 100 --quiet --force --out $(TORCH_EVAL)/transformer_encrypted.npy

bench: build
	./build/bin/tessera bench all

# The detector robustness lab (docs/MALWARE.md). Its heavy packages (wine64,
# gcc-mingw-w64) are installed here only, never by `make check`.
LAB = build/malware-lab
malware-lab: build
	@sh scripts/deps.sh lab
	nice sh scripts/malware_lab.sh $(LAB)

install: build
	cmake --install build --prefix $(PREFIX)

deb:
	@sh scripts/deb.sh

clean:
	rm -rf build build-asan build-fuzz
