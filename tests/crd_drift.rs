//! The committed CRD must be exactly what the types generate, or users install a stale contract.

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/hapolicy.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = skewguard::api::crd_yaml();
    assert!(
        committed == generated,
        "crds/hapolicy.yaml is out of date with src/api: run `make crd` and commit the result"
    );
}
