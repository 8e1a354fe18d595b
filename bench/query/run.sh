#!/usr/bin/env bash
# Query benchmark: a study-level C-FIND's index query (patient name wildcard plus a date range,
# with related counts and modalities) over 100,000 indexed instances. Prints ns/op and matches.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test ./store -run '^$' -bench BenchmarkFindStudy -benchtime "${BENCHTIME:-200x}" -count "${COUNT:-3}"
