# rekey's build and test entry points. `make test` is what CI runs.
GO ?= go
PKGS := ./...

# -trimpath: a package compiles to the same thing whatever directory the
# repository is in, so a second clone (CI's, a worktree), and the copy the
# README's Procfile test builds in, reuse what the build cache holds instead
# of compiling the whole module again; the go commands tests run inherit it.
# Added to the flags go env already holds, which the variable would replace.
export GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -trimpath)

.PHONY: test check vet fmt tidy race build bench fuzz

## test: static checks, then every test with the race detector against real Redis.
## Four packages and six tests of a package at once, not one a CPU: the
## slowest tests mostly wait (on real processes, graces, asynq's recovery of
## a killed worker's tasks, a wave at Heroku's real pace), and so do the
## packages that hold them (e2e, cmd/rekey, the PostgreSQL issuer, the
## scheduler, web). On two cores `go test` took about 11 minutes with two
## packages at once (its default there) and 5 minutes with four.
test: check
	$(GO) test -race -count=1 -p 4 -parallel 6 -timeout 12m $(PKGS)

## check: gofmt, go vet and go mod tidy must all be clean.
check: fmt vet tidy

fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

tidy:
	$(GO) mod tidy -diff

build:
	$(GO) build -o bin/ ./cmd/...

## bench: the fleet benchmark: 10,000 rotations on the fake Heroku with time
## sped up 60 times and three worker processes (about 4 min), then the
## real-time waves: 300 rotations at Heroku's real rate, clean, with 5% of
## pushes answered 503 under a CPU hog, and with a worker SIGKILLed (about
## 16 min), then Redis memory per instance, per waiting revoke and per
## rotation kept, for three forms of credential ids (BenchmarkMemory, about
## 2 min); each prints its tables.
bench:
	$(GO) test -run '^$$' -bench 'BenchmarkFleet|BenchmarkRealtimeWave' -benchtime 1x -timeout 45m ./internal/bench/
	$(GO) test -run '^$$' -bench BenchmarkMemory -benchtime 1x -timeout 10m ./internal/store/

## fuzz: run every Fuzz function of the module for FUZZTIME each: a count of
## inputs (50000x), not a duration. With a duration, Go's fuzzing coordinator
## can fail a target with a bare "context deadline exceeded" when the deadline
## fires while a starved worker is mid-input, with no failing input found; a
## count has no deadline to race. Packages and targets are found, not listed,
## so a new fuzz target is picked up without editing this file: they are read
## from the test files' "func Fuzz" lines, not from `go test -list`, which
## would build each package's test binary once more just to list them.
FUZZTIME ?= 50000x
fuzz:
	@set -e; \
	$(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' $(PKGS) | \
	while read -r pkg dir; do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$dir"/*_test.go); do \
			echo "fuzz: $$pkg $$fn for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null; \
		done; \
	done

## test-browser: drive the dashboard and /monitoring in headless Chromium
## (/usr/bin/chromium); screenshots land in ./screenshots.
.PHONY: test-browser
test-browser:
	REKEY_SCREENSHOTS=$(CURDIR)/screenshots $(GO) test -race -count=1 -timeout 5m -tags browser -run Browser -v ./internal/web/
