//! The committed CRD (and the API reference made from it) must be exactly what the types
//! generate, or users install, or read, a stale contract.
//! It is committed twice: `crds/` for `kubectl apply -f crds/`, `config/crd/` for kustomize (which
//! loads files only below its own root).

#[test]
fn committed_crds_match_the_types() {
    let generated = skewguard::api::crd_yaml();
    for file in ["crds/hapolicy.yaml", "config/crd/hapolicy.yaml"] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{file} is out of date with src/api: run `make crd` and commit the result"
        );
    }
}

#[test]
fn crds_holds_nothing_but_crds() {
    // Users apply the whole folder: anything else in it (a kustomization) makes that fail.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            text.contains("kind: CustomResourceDefinition"),
            "crds/ must hold only CRDs"
        );
    }
}

/// docs/api.md is the reference `skewguard api-docs` generates from the same CRD: a field added,
/// renamed or re-documented in src/api shows up there, or this fails.
#[test]
fn the_api_reference_matches_the_crd() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == skewguard::api::docs::markdown(),
        "docs/api.md is out of date with src/api: run `make api-docs` and commit the result"
    );
}
