# rekey's build and test entry points. `make test` is what CI runs.
GO ?= go
PKGS := ./...

.PHONY: test check vet fmt tidy race build bench

## test: static checks, then every test with the race detector against real Redis.
test: check
	$(GO) test -race -count=1 -timeout 12m $(PKGS)

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
## sped up 60 times and three worker processes; prints one table (about 4 min).
bench:
	$(GO) test -run '^$$' -bench BenchmarkFleet -benchtime 1x -timeout 20m ./internal/bench/

## test-browser: drive the dashboard and /monitoring in headless Chromium
## (/usr/bin/chromium); screenshots land in ./screenshots.
.PHONY: test-browser
test-browser:
	REKEY_SCREENSHOTS=$(CURDIR)/screenshots $(GO) test -race -count=1 -timeout 5m -tags browser -run Browser -v ./internal/web/
