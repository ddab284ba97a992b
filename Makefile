# Everyday commands. "make" alone builds.

GO      ?= go
COMPOSE ?= docker-compose

.PHONY: build test race vet fmt run docker compose-check

build:
	$(GO) build ./...

test:
	$(GO) test ./...

race:
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w .

run:
	$(GO) run ./cmd/chatd

docker:
	docker build -t chatd .

# Parses and schema-checks compose.yaml; needs no Docker daemon. Checked with
# Debian's docker-compose 1.29; for Compose v2 run
# make compose-check COMPOSE="docker compose".
compose-check:
	$(COMPOSE) -f compose.yaml config -q
