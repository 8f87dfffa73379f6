use std::io::Write;

use clap::Parser;
use skewguard::cli::{Cli, Command};

fn main() -> std::io::Result<()> {
    match Cli::parse().command {
        Command::Crd => std::io::stdout().write_all(skewguard::api::crd_yaml().as_bytes()),
        Command::Report(args) => skewguard::report::main(&args),
    }
}
