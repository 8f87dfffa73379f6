//! The HAPolicy API (skewguard.dev/v1alpha1).
