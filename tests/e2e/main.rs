//! The end-to-end suite: skewguard against a real control plane (see README, "End-to-end tests").
//!
//! A custom test harness (`harness = false`): one control plane is started for the whole run and
//! torn down at the end (also when a scenario panics, and on SIGINT/SIGTERM); each scenario runs in
//! its own namespace. Opt-in: without `SKEWGUARD_E2E=1` (set by `make e2e`), or without
//! control-plane binaries, it prints one `e2e: SKIPPED — why` line and succeeds, so
//! `cargo test --all-targets` stays fast and hermetic.
//!
//! Arguments (after `--`): name filters (substring, or exact with `--exact`), `--ignored` /
//! `--include-ignored` (the scale scenario), `--list`; libtest flags such as `--test-threads` are
//! accepted and ignored (scenarios always run one at a time).

// The harness offers more than today's scenarios use (the controller scenarios build on it).
#![allow(dead_code)]

#[path = "../https_client/mod.rs"]
mod https_client;
mod scenarios;

// The control plane, the fake kubelet and the harness live in the testbed crate (`testbed/`),
// shared with the demo; scenarios reach them as `crate::harness`, `crate::control_plane`, ...
pub use skewguard_testbed::{control_plane, fake_autoscaler, fake_kubelet, harness};

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use control_plane::{ControlPlane, Target, TempDir, discover};
use futures::FutureExt;
use harness::{Ctx, TestdataCrd};
use scenarios::Scenario;
use skewguard_testbed::session::{print_log_tails, setup, teardown_on_signal};

#[derive(Default)]
struct Args {
    filters: Vec<String>,
    exact: bool,
    ignored: bool,
    include_ignored: bool,
    list: bool,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args::default();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            match a.as_str() {
                "--exact" => args.exact = true,
                "--ignored" => args.ignored = true,
                "--include-ignored" => args.include_ignored = true,
                "--list" => args.list = true,
                "--test-threads" | "--color" | "--format" | "--skip" | "-Z" => {
                    it.next();
                }
                s if s.starts_with('-') => {}
                s => args.filters.push(s.to_string()),
            }
        }
        args
    }

    fn selects(&self, s: &Scenario) -> bool {
        let by_name = self.filters.is_empty()
            || self.filters.iter().any(|f| {
                if self.exact {
                    s.name == f
                } else {
                    s.name.contains(f.as_str())
                }
            });
        let by_ignore = if self.ignored {
            s.ignored
        } else {
            self.include_ignored || !s.ignored
        };
        by_name && by_ignore
    }
}

fn skip(why: &str) -> ExitCode {
    println!("e2e: SKIPPED — {why}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    let all = scenarios::all();
    if args.list {
        for s in &all {
            println!("{}: test", s.name);
        }
        return ExitCode::SUCCESS;
    }
    if std::env::var("SKEWGUARD_E2E").map_or(true, |v| v.is_empty() || v == "0") {
        return skip(
            "opt-in; run `make e2e` (SKEWGUARD_E2E=1) to start a control plane and run it",
        );
    }
    let target = match discover() {
        Ok(t) => t,
        Err(why) => return skip(&why),
    };
    let selected: Vec<&Scenario> = all.iter().filter(|s| args.selects(s)).collect();
    if selected.is_empty() {
        println!("e2e: no scenario matches {:?}", args.filters);
        return ExitCode::SUCCESS;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let work = TempDir::new("skewguard-e2e-run");
    let started = Instant::now();
    let cp = match &target {
        Target::Binaries(assets) => Some(ControlPlane::start(assets)),
        Target::Existing(_) => None,
    };
    if let Some(cp) = &cp {
        let dirs = vec![cp.dir.path().to_path_buf(), work.path().to_path_buf()];
        rt.spawn(teardown_on_signal(cp.processes.clone(), dirs, "e2e"));
    }
    let setup = rt.block_on(
        AssertUnwindSafe(setup(
            &target,
            cp.as_ref(),
            &work,
            Path::new(env!("CARGO_MANIFEST_DIR")),
            Path::new(env!("CARGO_BIN_EXE_skewguard")),
        ))
        .catch_unwind(),
    );
    let env = match setup {
        Ok(env) => env,
        Err(panic) => {
            if let Some(cp) = &cp {
                print_log_tails(cp);
            }
            std::panic::resume_unwind(panic);
        }
    };
    println!(
        "e2e: control plane ready in {:.1}s ({} scenario(s), kubeconfig {})",
        started.elapsed().as_secs_f64(),
        selected.len(),
        env.kubeconfig.display()
    );

    let mut failed = Vec::new();
    let mut skipped = 0;
    for s in &selected {
        let ctx = Ctx {
            env: env.clone(),
            ns: s.name.replace('_', "-").chars().take(63).collect(),
        };
        print!("test {} ... ", s.name);
        let _ = std::io::Write::flush(&mut std::io::stdout());
        if s.needs_rollout && !env.rollout_crd {
            println!("skipped (no Rollout CRD in ../shared/testdata)");
            skipped += 1;
            continue;
        }
        let autoscaling_crds = [TestdataCrd::NodePool, TestdataCrd::CapacityBuffer];
        if s.needs_autoscaling
            && autoscaling_crds
                .iter()
                .any(|c| env.testdata_crd(*c).is_none())
        {
            println!("skipped (no NodePool or CapacityBuffer CRD in ../shared/testdata)");
            skipped += 1;
            continue;
        }
        env.kubelet.set_readiness_delay(Duration::ZERO);
        let t = Instant::now();
        let outcome = rt.block_on(async {
            ctx.create_namespace().await;
            let run = tokio::spawn(tokio::time::timeout(s.timeout, (s.run)(ctx.clone()))).await;
            ctx.delete_namespace().await;
            run
        });
        let secs = t.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok(())) => println!("ok ({secs:.1}s)"),
            Ok(Err(_)) => {
                println!("FAILED ({secs:.1}s): timed out after {:?}", s.timeout);
                failed.push(s.name);
            }
            Err(e) => {
                println!("FAILED ({secs:.1}s): {}", panic_message(e));
                failed.push(s.name);
            }
        }
        if let Some(cp) = &cp
            && !cp.processes.exited().is_empty()
        {
            print_log_tails(cp);
            println!("e2e: the control plane died; stopping");
            failed.push("control plane");
            break;
        }
    }
    env.kubelet.stop();
    drop(rt);
    drop(cp);
    println!(
        "test result: {}. {} passed; {} failed; {skipped} skipped; finished in {:.1}s",
        if failed.is_empty() { "ok" } else { "FAILED" },
        // `failed` may also hold "control plane" (not a scenario) when it died.
        selected.len().saturating_sub(failed.len() + skipped),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failures: {failed:?}");
        ExitCode::FAILURE
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()),
        Err(e) => e.to_string(),
    }
}
