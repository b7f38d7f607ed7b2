# riposte — see README.md. Every target works on a fresh Debian machine as root.
GO        ?= go
BIN       ?= bin/riposte
DATA      ?= riposte-data
CONFIG    ?= examples/riposte.yaml
PKGS      ?= ./...
TESTFLAGS ?=

.PHONY: build test bench generate lint run demo cluster-demo kube-demo clean fuzz

build:
	$(GO) build -o $(BIN) ./cmd/riposte

# Unit and integration tests. Integration tests skip locally without root,
# Docker or eBPF and fail instead when RIPOSTE_REQUIRE_INTEGRATION=1 (CI).
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(TESTFLAGS) $(PKGS)

bench:
	./scripts/bench.sh

generate:
	$(GO) generate ./bpf/...

lint:
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

# The main job: start dockerd if needed, build, serve with the example config.
run: build
	./scripts/run.sh $(BIN) $(CONFIG) $(DATA)

# With `make run` serving in another terminal: attack a demo container and
# show what riposte did.
demo: build
	./scripts/demo.sh

# Cluster mode on one machine: PostgreSQL, two replicas, one alert sent to
# both, one journal.
cluster-demo: build
	BIN=$(BIN) ./scripts/cluster-demo.sh

# riposte against a local kube-apiserver with kwok nodes: a Falco alert about
# a pod, the pod's evidence, labels and NetworkPolicy, the journal.
kube-demo: build
	./scripts/kube-demo.sh

clean:
	rm -rf bin $(DATA)
