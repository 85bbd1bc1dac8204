//! berth: system containers for Linux. This binary only wires the command line to the
//! library crates: argument structs, output, and errors turned into exit codes.

#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for berth's own failures in `run` and `chroot`, as chroot(8) and
/// `docker run` use it.
const EXIT_BERTH_FAILED: u8 = 125;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "System containers for Linux",
    propagate_version = true
)]
struct Cli {
    /// State directory (containers, images, caches).
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Run(cmd::run::RunArgs),
    Chroot(cmd::chroot::ChrootArgs),
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                // run and chroot report their own failures as 125, never as a status the
                // command itself could have returned.
                _ if runs_a_command(&argv) => EXIT_BERTH_FAILED,
                _ => 2,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.log_level);
    let result = match cli.command {
        Command::Run(args) => cmd::run::main(&cli.root, args),
        Command::Chroot(args) => cmd::chroot::main(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("berth: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// Whether the command line names `run` or `chroot` (for the exit status of a usage error).
fn runs_a_command(argv: &[std::ffi::OsString]) -> bool {
    let mut args = argv.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        match a.as_ref() {
            // Global options that take a separate value.
            "--root" | "--log-level" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => return a == "run" || a == "chroot",
        }
    }
    false
}

/// A plain level filter: an `EnvFilter` compiles regular expressions, which costs more
/// than the whole of `berth chroot`'s own work.
fn init_logging(level: &str) {
    let filter: tracing_subscriber::filter::LevelFilter = level
        .parse()
        .unwrap_or(tracing_subscriber::filter::LevelFilter::WARN);
    tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

/// An error with the exit status to report.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn berth(error: anyhow::Error) -> Self {
        Failure {
            code: EXIT_BERTH_FAILED,
            error,
        }
    }
}

impl From<berth_runtime::LaunchError> for Failure {
    fn from(e: berth_runtime::LaunchError) -> Self {
        Failure {
            code: e.code,
            error: anyhow::anyhow!(e.message),
        }
    }
}
