//! Terminal commands for a person on the node: `report`, `inspect` and `diff`, built on
//! the same scanner as the exporter.

use std::process::ExitCode;

use crate::config::{Command, Settings};

/// Flags of `nsexporter report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Include fully private containers.
    #[arg(long)]
    pub all: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Never colour the output.
    #[arg(long = "no-color")]
    pub no_color: bool,
}

/// Arguments of `nsexporter inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The process to inspect, as its PID in the host procfs.
    pub pid: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `nsexporter diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    pub pid_a: String,
    pub pid_b: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Run a terminal command.
pub fn run(cmd: Command, _settings: &Settings) -> ExitCode {
    match cmd {
        Command::Report(_) | Command::Inspect(_) | Command::Diff(_) => {
            eprintln!("nsexporter: this command is not available yet");
            ExitCode::from(1)
        }
    }
}
