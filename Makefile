GO ?= go
BIN := bin/espnode
ORT_LIB := $(CURDIR)/third_party/onnxruntime/libonnxruntime.so.1
export ONNXRUNTIME_SHARED_LIBRARY_PATH ?= $(ORT_LIB)

.PHONY: run build test test-go test-python vet fuzz bench deps-run deps-test

run: deps-run build
	./$(BIN) serve

build:
	$(GO) build -o $(BIN) ./cmd/espnode

deps-run:
	scripts/deps.sh run

deps-test:
	scripts/deps.sh test

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) test -count=1 ./internal/layers   # the import rule of docs/DESIGN.md

test: deps-test vet test-go test-python

test-go:
	$(GO) test -count=1 -timeout 40m ./...

test-python:
	@if [ -d model ]; then cd model && /usr/bin/python3 -m unittest discover -v -s tests 2>&1; fi

fuzz:
	$(GO) test ./dimse -run '^$$' -fuzz FuzzReadPDU -fuzztime 60s
	$(GO) test ./dimse -run '^$$' -fuzz FuzzDecodeCommand -fuzztime 60s
	$(GO) test ./dimse -run '^$$' -fuzz FuzzServeConn -fuzztime 60s
	for f in FuzzReader FuzzParseDataSet FuzzExplicitToImplicit FuzzReadFileMeta FuzzParseFragments; do \
		$(GO) test ./dcm -run '^$$' -fuzz "^$$f\$$" -fuzztime 60s -parallel 1 || exit 1; done
	for f in FuzzParseAccept FuzzParseQIDO FuzzFrameAndBulkPaths FuzzLayout FuzzJSON FuzzStow FuzzRequest; do \
		$(GO) test ./dicomweb -run '^$$' -fuzz "^$$f\$$" -fuzztime 60s -parallel 1 || exit 1; done
	$(GO) test ./httpguard -run '^$$' -fuzz FuzzAuthorization -fuzztime 60s -parallel 1

bench:
	bench/ingest/run.sh
