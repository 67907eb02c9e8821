//! capsule-gen: generate shim crates for host libraries, and show what a capsule loads.

mod deps;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "capsule-gen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Deps(deps::DepsArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Deps(args) => deps::run(&args),
    }
}
