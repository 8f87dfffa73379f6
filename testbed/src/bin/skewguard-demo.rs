//! `skewguard-demo`: the petclinic field story, live, on a throwaway control plane (see README,
//! "Try it"). `make demo`, or `cargo run -p skewguard-testbed --bin skewguard-demo [-- --keep]`.
//!
//! Finds the control-plane binaries as the end-to-end suite does (`SKEWGUARD_E2E_KUBECONFIG` for an
//! existing cluster, `KUBEBUILDER_ASSETS`, setup-envtest's directory), starts them on loopback,
//! tells the story ([`skewguard_testbed::demo::story`]) with the `skewguard` binary built next to
//! this one, and tears everything down; `--keep` leaves it all running until Ctrl-C.
//! Exit status: 0 when the story ended balanced with the fewest evictions, 1 when it did not or a
//! step failed, 2 when something it needs is missing (one line says what, and how to get it).

use std::io::IsTerminal;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use futures::FutureExt;
use skewguard_testbed::control_plane::{ControlPlane, Target, TempDir, discover, find_on_path};
use skewguard_testbed::demo::screen::Screen;
use skewguard_testbed::demo::{POLICY, story};
use skewguard_testbed::harness::Ctx;
use skewguard_testbed::session::{print_log_tails, setup, teardown_on_signal};

const NAMESPACE: &str = "petclinic";
const USAGE: &str = "usage: skewguard-demo [--keep] [--plain]

Tells the petclinic field story live on a throwaway Kubernetes control plane (about two minutes).
  --keep   leave the cluster, the fake kubelet and skewguard running after the story, print the
           kubeconfig and kubectl commands to try, and tear down on Ctrl-C
  --plain  plain lines instead of a table redrawn in place (the default when not on a terminal)

The control-plane binaries come from KUBEBUILDER_ASSETS or setup-envtest's directory
(~/.local/share/kubebuilder-envtest/k8s/); SKEWGUARD_E2E_KUBECONFIG names an existing, otherwise
empty cluster instead. SKEWGUARD_BIN names the skewguard binary (default: the one next to this).";

#[derive(Default)]
struct Args {
    keep: bool,
    plain: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--keep" => args.keep = true,
            "--plain" => args.plain = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// One line on stderr and exit status 2: something the demo needs is missing.
fn missing(what: &str) -> ExitCode {
    eprintln!("skewguard-demo: {what}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(why) if why.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("skewguard-demo: {why}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match discover() {
        Ok(t) => t,
        Err(why) => {
            return missing(&format!(
                "{why}: `go run sigs.k8s.io/controller-runtime/tools/setup-envtest@latest use 1.33.x` \
                 puts kube-apiserver, kube-scheduler, kube-controller-manager and etcd in \
                 ~/.local/share/kubebuilder-envtest/k8s/, or point KUBEBUILDER_ASSETS at a \
                 directory holding them (etcd may also be on PATH)"
            ));
        }
    };
    if matches!(target, Target::Binaries(_)) && find_on_path("openssl").is_none() {
        return missing(
            "no openssl on PATH (it makes the control plane's certificates): install it, e.g. \
             `apt-get install openssl`",
        );
    }
    let operator_bin = match operator_binary(&repo) {
        Ok(bin) => bin,
        Err(why) => return missing(&why),
    };
    let tty = !args.plain && std::io::stdout().is_terminal();
    run(&args, target, &repo, &operator_bin, tty)
}

/// The `skewguard` binary: `SKEWGUARD_BIN`, else the one next to this executable. Started by
/// `cargo run`, it is built first (same target directory and profile), so it is never stale.
fn operator_binary(repo: &Path) -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SKEWGUARD_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("SKEWGUARD_BIN={} is not a file", bin.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own path: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    if let (Some(cargo), Some(profile), Some(target_dir)) = (
        std::env::var_os("CARGO"),
        dir.file_name().and_then(|p| p.to_str()),
        dir.parent(),
    ) {
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--bin", "skewguard", "--manifest-path"])
            .arg(repo.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        match profile {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let built = build.status().map(|s| s.success()).unwrap_or(false);
        if !built {
            return Err("building the operator failed (cargo build --bin skewguard)".into());
        }
    }
    let bin = dir.join("skewguard");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "no skewguard binary next to {}: build it first with `cargo build` (or run `make demo`)",
            exe.display()
        ))
    }
}

fn run(args: &Args, target: Target, repo: &Path, operator_bin: &Path, tty: bool) -> ExitCode {
    let started = Instant::now();
    println!(
        "skewguard demo: the petclinic field story on a throwaway control plane (about a \
         minute; Ctrl-C tears it down)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let work = TempDir::new("skewguard-demo-run");
    let cp = match &target {
        Target::Binaries(assets) => {
            println!(
                "Starting etcd, kube-apiserver, kube-scheduler and kube-controller-manager from {} \
                 on loopback",
                assets.dir.display()
            );
            Some(ControlPlane::start(assets))
        }
        Target::Existing(kubeconfig) => {
            println!(
                "Using the cluster of {} (SKEWGUARD_E2E_KUBECONFIG)",
                kubeconfig.display()
            );
            None
        }
    };
    let on_signal = cp.as_ref().map(|cp| {
        let dirs = vec![cp.dir.path().to_path_buf(), work.path().to_path_buf()];
        rt.spawn(teardown_on_signal(
            cp.processes.clone(),
            dirs,
            "skewguard-demo",
        ))
    });

    let told = rt.block_on(
        AssertUnwindSafe(async {
            let env = setup(&target, cp.as_ref(), &work, repo, operator_bin).await;
            println!(
                "Control plane ready in {:.1}s (kubeconfig {})",
                started.elapsed().as_secs_f64(),
                env.kubeconfig.display()
            );
            let ctx = Ctx {
                env,
                ns: NAMESPACE.to_string(),
            };
            ctx.create_namespace().await;
            let mut screen = Screen::new(Box::new(std::io::stdout()), tty);
            let (outcome, running) = story(&ctx, &mut screen).await;
            (ctx, outcome, running)
        })
        .catch_unwind(),
    );
    let (ctx, outcome, running) = match told {
        Ok(told) => told,
        Err(_) => {
            // The panic hook has printed what failed.
            if let Some(cp) = &cp {
                print_log_tails(cp);
            }
            eprintln!("skewguard-demo: the story stopped; tearing down");
            drop(rt);
            drop(cp);
            return ExitCode::FAILURE;
        }
    };

    if args.keep {
        if let Some(task) = &on_signal {
            task.abort();
        }
        print_keep_hints(&ctx, &running.operator.log, operator_bin);
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
        });
        println!();
    }

    drop(running);
    ctx.kubelet.stop();
    if cp.is_none() {
        // An existing cluster keeps its nodes; the namespace goes.
        rt.block_on(ctx.delete_namespace());
    }
    drop(rt);
    drop(cp);
    drop(work);
    println!("Torn down; {:.0}s in all.", started.elapsed().as_secs_f64());
    if outcome.balanced() && outcome.evictions() == outcome.lower_bound() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_keep_hints(ctx: &Ctx, operator_log: &Path, operator_bin: &Path) {
    let kubectl = ctx
        .kubectl
        .as_ref()
        .map(|k| {
            if find_on_path("kubectl").as_deref() == Some(k.as_path()) {
                "kubectl".to_string()
            } else {
                k.display().to_string()
            }
        })
        .unwrap_or_else(|| "kubectl".to_string());
    let ns = &ctx.ns;
    println!(
        "\nThe cluster stays up (skewguard and the fake kubelet keep running) until Ctrl-C:\n\
         \n    export KUBECONFIG={kc}\
         \n    {kubectl} get hap -n {ns}\
         \n    {kubectl} describe hap {POLICY} -n {ns}\
         \n    {kubectl} get pods -n {ns} -o wide\
         \n    {kubectl} events -n {ns}\
         \n    {bin} report -n {ns}\
         \n\nRun the drill yourself and watch skewguard spread the pods back:\
         \n    {kubectl} cordon -l topology.kubernetes.io/zone=ap-northeast-2a\
         \n    {kubectl} delete pods -n {ns} --field-selector spec.nodeName=ap-northeast-2a-node-0\
         \n    {kubectl} delete pods -n {ns} --field-selector spec.nodeName=ap-northeast-2a-node-1\
         \n    {kubectl} uncordon -l topology.kubernetes.io/zone=ap-northeast-2a\
         \n\nskewguard's log: {log}",
        kc = ctx.kubeconfig.display(),
        bin = operator_bin.display(),
        log = operator_log.display(),
    );
}
