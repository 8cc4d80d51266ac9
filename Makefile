# Convenience targets; the scripts are the source of truth.
.PHONY: test run bench-tenant fuzz

test:
	bash scripts/test.sh

run:
	go run ./appliance/cmd/seccloud run

bench-tenant:
	go test ./tenant -run '^$$' -bench . -count 3

# Short fuzzing session over every fuzz target (FUZZTIME each).
FUZZTIME ?= 30s
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)
