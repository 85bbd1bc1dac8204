//! One module per command.

pub mod chroot;
mod host;
pub mod image;
pub mod limit_flags;
pub mod net;
pub mod run;
pub mod snapshot;
pub mod system;
pub mod top;

use std::path::PathBuf;

/// The global options before the subcommand `name` (`--root DIR`, `--log-level L`), for the
/// hand-written parsers of the hot commands: the log level, the root if given, and the
/// arguments after the subcommand. None when the line is anything else.
fn global_prefix<'a>(
    argv: &'a [String],
    name: &str,
) -> Option<(String, Option<PathBuf>, &'a [String])> {
    let mut level = "warn".to_string();
    let mut root = None;
    let mut i = 1;
    loop {
        let a = argv.get(i)?;
        i += 1;
        match a.as_str() {
            n if n == name => return Some((level, root, &argv[i..])),
            "--root" => {
                root = Some(PathBuf::from(argv.get(i)?));
                i += 1;
            }
            "--log-level" => {
                level = argv.get(i)?.clone();
                i += 1;
            }
            _ if a.starts_with("--root=") => root = Some(PathBuf::from(&a["--root=".len()..])),
            _ if a.starts_with("--log-level=") => level = a["--log-level=".len()..].to_string(),
            _ => return None,
        }
    }
}

/// `--option=value` split into the option and its inline value (None for `--option` or a
/// short option), for the hand-written parsers.
fn split_inline(arg: &str) -> (&str, Option<String>) {
    match arg.split_once('=') {
        Some((o, v)) if o.starts_with("--") => (o, Some(v.to_string())),
        _ => (arg, None),
    }
}

/// Whether a container source names a root filesystem directory rather than an image: a path
/// starts with '/' or '.'; an image name ("busybox", "debian/bookworm") never does, and
/// anything that is not a valid image name is taken for a path.
pub fn is_path_source(source: &str) -> bool {
    source.starts_with('/')
        || source.starts_with('.')
        || berth_spec::validate::image_name(source).is_err()
}
