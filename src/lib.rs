//! skewguard: keeps Kubernetes workloads spread across zones and nodes, safely.
//!
//! The folders say what each part is:
//! - [`api`]: the HAPolicy contract users write (spec, status, conditions, CEL rules).
//! - [`core`]: the functional core. Measuring skew, planning moves, deciding what to do and what
//!   the status says are pure functions over plain data; nothing under it talks to the API server.
//! - [`shell`]: the imperative shell. Watches and caches, the reconcile that gathers state, calls
//!   the core and carries out its writes, leadership, the HTTP endpoints and the metrics.
//! - [`report`]: the read-only `report` command, which runs the core's own pipeline.

pub mod api;
pub mod core;
pub mod report;
pub mod shell;
