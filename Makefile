# Front door for skewguard. `make test` is what CI (.ci/run) and the README run.
CARGO ?= cargo
IMG ?= skewguard:latest
KUBECTL ?= kubectl
# docker-buildx: the platforms of the multi-arch image.
PLATFORMS ?= linux/amd64,linux/arm64

.PHONY: krew-archives build test lint alerts crd crd-check api-docs bench run install uninstall demo e2e e2e-scale soak docker-build docker-push docker-buildx deploy undeploy

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

crd-check: ## Fail when a generated CRD file (or docs/api.md) differs from what the types generate
	$(CARGO) test --test crd_drift

api-docs: ## Regenerate docs/api.md (the HAPolicy API reference) from the CRD
	$(CARGO) run -q -- api-docs > docs/api.md

bench: ## Benchmarks
	$(CARGO) bench

run: ## Run the controller against the current kubeconfig, alone (no leader election)
	$(CARGO) run -- run --leader-elect=false $(RUN_ARGS)

install: ## Install the HAPolicy CRD (config/crd) into the current cluster
	$(KUBECTL) apply -k config/crd

uninstall: ## Delete the HAPolicy CRD: THIS DELETES EVERY HAPolicy IN THE CLUSTER
	$(KUBECTL) delete -k config/crd --ignore-not-found

# One build of both packages: their dependencies then share the operator's features (as `make
# build` builds them) instead of a second build of kube and hyper with the testbed's alone.
demo: ## The petclinic story live on a throwaway control plane (about a minute); DEMO_ARGS=--keep leaves it up
	$(CARGO) build -q -p skewguard -p skewguard-testbed --bins
	"$$($(CARGO) metadata -q --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/skewguard-demo" $(DEMO_ARGS)

e2e: ## End-to-end suite against a real control plane (KUBEBUILDER_ASSETS / setup-envtest); skips when there is none
	SKEWGUARD_E2E=1 $(CARGO) test --test e2e -- --test-threads=1

e2e-scale: ## The three-zones-at-scale scenario (30 nodes, 300 Deployments; slow)
	SKEWGUARD_E2E=1 $(CARGO) test --test e2e -- --test-threads=1 --ignored scale

# SKEWGUARD_SOAK_SEED replays a run's choices of faults and churn (it prints its seed).
SKEWGUARD_SOAK_MINUTES ?= 30
soak: ## The soak: SKEWGUARD_SOAK_MINUTES (30) of faults, churn, leader kills and API server restarts, then the invariants
	SKEWGUARD_E2E=1 SKEWGUARD_SOAK_MINUTES=$(SKEWGUARD_SOAK_MINUTES) $(CARGO) test --test e2e -- --test-threads=1 --ignored --exact soak

docker-build: ## Build the operator image (multi-stage Dockerfile) for this machine's platform as $(IMG)
	docker build -t $(IMG) .

docker-push: ## Push $(IMG)
	docker push $(IMG)

docker-buildx: ## Build and push a multi-arch image ($(PLATFORMS)) as $(IMG) with docker buildx
	docker buildx build --platform $(PLATFORMS) -t $(IMG) --push .

VERSION := v$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
krew-archives: ## dist/kubectl-skewguard_$(VERSION)_linux_<arch>.tar.gz for this machine's arch (krew's archives)
	$(CARGO) build --release --bin kubectl-skewguard
	mkdir -p dist
	tar -czf dist/kubectl-skewguard_$(VERSION)_linux_$$(dpkg --print-architecture 2>/dev/null || uname -m).tar.gz \
		-C target/release kubectl-skewguard -C $(CURDIR) LICENSE

# The CRD first (config/crd), then the operator (config/default) with its image set to $(IMG).
deploy: install ## Install the CRD, then RBAC and the operator (image $(IMG)) into the current cluster
	$(KUBECTL) kustomize config/default | sed 's|image: skewguard:latest$$|image: $(IMG)|' | $(KUBECTL) apply -f -

undeploy: ## Remove the operator; the CRD and every HAPolicy stay (make uninstall removes them)
	$(KUBECTL) delete -k config/default --ignore-not-found
