//! The core's builders (`skewguard::core::topology::fixtures`) and model, for the integration tests.
#![allow(unused_imports)]

pub use skewguard::core::topology::fixtures::*;
pub use skewguard::core::topology::*;
