//! What the soak (`make soak`, tests/e2e/scenarios/soak.rs) is made of: a fault injector between
//! the operator replicas and the API server ([`fault_proxy`]), a recorder of what happened
//! ([`recorder`] into a [`history::History`]), the invariants checked over it ([`invariants`]),
//! and the seeded random numbers behind the faults and the churn ([`rng`]).

pub mod fault_proxy;
pub mod history;
pub mod invariants;
pub mod recorder;
pub mod rng;
