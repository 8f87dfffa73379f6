//! What skewguard's end-to-end suite (`tests/e2e/`) and its demo share: a throwaway control plane
//! on loopback ([`control_plane`]), a fake kubelet for zoned nodes ([`fake_kubelet`]), a fake node
//! autoscaler playing Karpenter beside it ([`fake_autoscaler`]), the suite's
//! environment and per-namespace context ([`harness`]), the petclinic workloads ([`fixtures`]) and
//! what the operator scenarios read and play ([`support`]: status, Events, `/metrics`, Argo),
//! and the soak's fault proxy, history and invariants ([`soak`]).
//!
//! Not published; the operator does not depend on it (only its tests do).

pub mod control_plane;
pub mod demo;
pub mod fake_autoscaler;
pub mod fake_kubelet;
pub mod fixtures;
pub mod harness;
pub mod session;
pub mod soak;
pub mod support;
