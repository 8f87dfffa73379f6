# Front door for skewguard. `make test` is what CI (.ci/run) and the README run.
CARGO ?= cargo
IMG ?= skewguard:latest
KUBECTL ?= kubectl

.PHONY: build test lint alerts crd crd-check bench run install demo e2e e2e-scale docker-build deploy undeploy

build: ## Build the operator binary
	$(CARGO) build

test: lint ## Lint, then every unit, integration and drift test
	$(CARGO) test --workspace --all-targets

lint: ## Formatting and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

alerts: ## promtool check rules + promtool test rules on the PrometheusRule (also part of `make test`)
	$(CARGO) test --test alerts -- --nocapture

crd: ## Regenerate crds/hapolicy.yaml and config/crd/hapolicy.yaml from the Rust types
	$(CARGO) run -q -- crd > crds/hapolicy.yaml.tmp
	cp crds/hapolicy.yaml.tmp config/crd/hapolicy.yaml
	mv crds/hapolicy.yaml.tmp crds/hapolicy.yaml

crd-check: ## Fail when a generated CRD file differs from what the types generate
	$(CARGO) test --test crd_drift

bench: ## Benchmarks
	$(CARGO) bench

run: ## Run the controller against the current kubeconfig, alone (no leader election)
	$(CARGO) run -- run --leader-elect=false $(RUN_ARGS)

install: ## Apply the HAPolicy CRD to the current cluster
	$(CARGO) run -q -- crd | kubectl apply -f -

# One build of both packages: their dependencies then share the operator's features (as `make
# build` builds them) instead of a second build of kube and hyper with the testbed's alone.
demo: ## The petclinic story live on a throwaway control plane (about a minute); DEMO_ARGS=--keep leaves it up
	$(CARGO) build -q -p skewguard -p skewguard-testbed --bins
	"$$($(CARGO) metadata -q --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/skewguard-demo" $(DEMO_ARGS)

e2e: ## End-to-end suite against a real control plane (KUBEBUILDER_ASSETS / setup-envtest); skips when there is none
	SKEWGUARD_E2E=1 $(CARGO) test --test e2e -- --test-threads=1

e2e-scale: ## The three-zones-at-scale scenario (30 nodes, 300 Deployments; slow)
	SKEWGUARD_E2E=1 $(CARGO) test --test e2e -- --test-threads=1 --ignored scale

docker-build: ## Build the operator image (multi-stage Dockerfile) as $(IMG)
	docker build -t $(IMG) .

deploy: ## Install the CRD, RBAC and the operator into the current kubeconfig's cluster
	$(KUBECTL) apply -k config/default

undeploy: ## Remove everything deploy installed; deleting the CRD deletes every HAPolicy
	$(KUBECTL) delete -k config/default --ignore-not-found
