//! berth-probe: run inside a container by the end-to-end tests to report, as JSON on
//! stdout, what the container looks like from inside. See `USAGE`.
#![deny(unsafe_code)]

mod abi;
mod commands;
mod report;
mod syscalls;

use std::process::ExitCode;

const USAGE: &str = "usage: berth-probe report
       berth-probe exit N
       berth-probe sleep SECS
       berth-probe kill-self SIGNUM
       berth-probe trap-sleep SECS
       berth-probe write PATH TEXT
       berth-probe stat PATH
       berth-probe cat PATH
       berth-probe winsize
       berth-probe tiocsti";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["report"] => {
            println!("{}", report::report());
            ExitCode::SUCCESS
        }
        ["exit", n] => match n.parse::<u8>() {
            Ok(n) => ExitCode::from(n),
            Err(_) => usage(),
        },
        ["sleep", secs] => secs.parse().map_or_else(|_| usage(), commands::sleep),
        ["kill-self", sig] => sig.parse().map_or_else(|_| usage(), commands::kill_self),
        ["trap-sleep", secs] => secs.parse().map_or_else(|_| usage(), commands::trap_sleep),
        ["write", path, text] => commands::write(path, text),
        ["stat", path] => commands::stat(path),
        ["cat", path] => commands::cat(path),
        ["winsize"] => commands::winsize(),
        ["tiocsti"] => {
            // On stdin, whatever it is: with the ioctl filtered, EPERM whatever the fd.
            println!("{}", serde_json::json!({"errno": syscalls::tiocsti(0)}));
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
