GO ?= go
BIN := bin/espnode
ORT_LIB := $(CURDIR)/third_party/onnxruntime/libonnxruntime.so.1
export ONNXRUNTIME_SHARED_LIBRARY_PATH ?= $(ORT_LIB)

.PHONY: run build build-nocodecs test test-go test-nocodecs test-python vet fuzz bench bench-pixel deps-run deps-test

run: deps-run build
	./$(BIN) serve

build:
	$(GO) build -o $(BIN) ./cmd/espnode

# Without the C codec libraries (JPEG-LS, JPEG 2000/HTJ2K, JPEG XL are then stored, not segmented).
build-nocodecs:
	$(GO) build -tags nocodecs -o $(BIN) ./cmd/espnode

deps-run:
	scripts/deps.sh run

deps-test:
	scripts/deps.sh test

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) test -count=1 ./internal/layers   # the import rule of docs/DESIGN.md

test: deps-test vet test-go test-nocodecs test-python

test-go:
	$(GO) test -count=1 -timeout 40m ./...
	# An association is read by one goroutine and written by several when a window is granted.
	$(GO) test -count=1 -race ./dimse ./scp

# The build without the C codecs: everything compiles, and the pixel tests expect its syntaxes
# to be refused as unsupported.
test-nocodecs:
	$(GO) vet -tags nocodecs ./...
	$(GO) test -count=1 -tags nocodecs -run 'TestDecodeInventory|TestUnsupported|TestVersionListsCodecs' ./seg/pixel ./cmd/espnode

test-python:
	@if [ -d model ]; then cd model && /usr/bin/python3 -m unittest discover -v -s tests 2>&1; fi

fuzz:
	$(GO) test ./dimse -run '^$$' -fuzz FuzzReadPDU -fuzztime 60s
	$(GO) test ./dimse -run '^$$' -fuzz FuzzDecodeCommand -fuzztime 60s
	$(GO) test ./dimse -run '^$$' -fuzz FuzzServeConn -fuzztime 60s
	for f in FuzzReader FuzzParseDataSet FuzzExplicitToImplicit FuzzReadFileMeta FuzzParseFragments; do \
		$(GO) test ./dcm -run '^$$' -fuzz "^$$f\$$" -fuzztime 60s -parallel 1 || exit 1; done
	for p in jpeg charls openjpeg jxl; do \
		$(GO) test ./seg/pixel/codec/$$p -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 60s -fuzzminimizetime 5s -parallel 1 || exit 1; done
	$(GO) test ./seg/pixel -run '^$$' -fuzz '^FuzzDecodeImage$$' -fuzztime 60s -fuzzminimizetime 5s -parallel 1
	$(GO) test ./seg/pixel/transcode -run '^$$' -fuzz '^FuzzDecompress$$' -fuzztime 60s -fuzzminimizetime 5s -parallel 1
	for f in FuzzParseAccept FuzzParseQIDO FuzzFrameAndBulkPaths FuzzLayout FuzzJSON FuzzStow FuzzRequest; do \
		$(GO) test ./dicomweb -run '^$$' -fuzz "^$$f\$$" -fuzztime 60s -parallel 1 || exit 1; done
	$(GO) test ./httpguard -run '^$$' -fuzz FuzzAuthorization -fuzztime 60s -parallel 1
	for f in FuzzParams FuzzLogLine; do \
		$(GO) test ./console -run '^$$' -fuzz "^$$f\$$" -fuzztime 60s -parallel 1 || exit 1; done

bench:
	bench/ingest/run.sh

bench-pixel:
	$(GO) run ./bench/pixel -runs 9
