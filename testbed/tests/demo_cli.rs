//! `skewguard-demo` without what it needs: one line saying what is missing and how to get it, and
//! a non-zero exit, before it starts or builds anything.

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("skewguard-demo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skewguard-demo"))
        .args(args)
        // No control-plane binaries anywhere it looks, and no cargo to build the operator with.
        .env("HOME", &home)
        .env_remove("KUBEBUILDER_ASSETS")
        .env_remove("SKEWGUARD_E2E_KUBECONFIG")
        .env_remove("CARGO")
        .env_remove("SKEWGUARD_BIN")
        .output()
        .expect("run skewguard-demo");
    let _ = std::fs::remove_dir_all(&home);
    out
}

#[test]
fn without_control_plane_binaries_it_says_so_in_one_line() {
    let out = demo(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("skewguard-demo: no control-plane binaries"),
        "{stderr}"
    );
    assert!(stderr.contains("KUBEBUILDER_ASSETS"), "{stderr}");
    assert!(stderr.contains("setup-envtest"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing started");
}

#[test]
fn help_and_unknown_arguments() {
    let help = demo(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--keep"));
    let bad = demo(&["--frobnicate"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument"));
}
