use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use skewguard::shell::cli::{Cli, Command, completion_script};

/// mimalloc: a reconcile makes and drops many small objects (the pipeline's plans, bodies and
/// notes); with glibc's allocator that churn was a third of a whole-cluster evaluation's time
/// (`cargo bench --bench reconcile`, which uses the same allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => print(skewguard::api::crd_yaml().as_bytes()),
        Command::ApiDocs => print(skewguard::api::docs::markdown().as_bytes()),
        Command::Completion(args) => {
            print(&completion_script(args.shell, Cli::command(), "skewguard"))
        }
        Command::Run(args) => {
            skewguard::shell::telemetry::init(args.log_format);
            // One thread: an operator mostly waits on the API server (a whole-cluster pass of the
            // core is a fraction of a second, `cargo bench --bench reconcile`), and one thread
            // keeps the heap in one place (50,000 cached pods: about 147 MiB resident, README "Sizing").
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return fail(&e),
            };
            match runtime.block_on(skewguard::shell::controller::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Report(args) => skewguard::report::main(&args),
    }
}

fn print(bytes: &[u8]) -> ExitCode {
    match std::io::stdout().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("skewguard: {e}");
    ExitCode::FAILURE
}
