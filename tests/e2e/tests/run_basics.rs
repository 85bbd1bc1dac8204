//! `berth run` as a user drives it: the command and its exit status, images, stdin, the
//! process's identity and environment, terminals and window sizes, and signals sent to
//! berth.

use berth_e2e::{World, root_or_skip, text};
use serde_json::Value;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// `berth run [OPTS] ROOTFS -- CMD...` with stdin closed.
fn run(w: &World, opts: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["run"];
    args.extend_from_slice(opts);
    args.push(w.rootfs_str());
    args.push("--");
    args.extend_from_slice(cmd);
    w.run(&args)
}

/// `berth run [OPTS] ROOTFS -- CMD...` with `input` written to its stdin, a pipe.
fn run_with_stdin(w: &World, opts: &[&str], cmd: &[&str], input: &str) -> Output {
    let mut berth = w.berth();
    berth.arg("run").args(opts).arg(&w.rootfs);
    if !cmd.is_empty() {
        berth.arg("--").args(cmd);
    }
    let mut child = berth
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(input.as_bytes())
        .expect("write berth's stdin");
    // Closing stdin is the end of input for the command.
    drop(stdin);
    child.wait_with_output().expect("wait for berth")
}

/// The probe's report, from a `berth` command prepared by the caller.
fn report(mut berth: Command, opts: &[&str], w: &World) -> Value {
    let out = berth
        .arg("run")
        .args(opts)
        .arg(&w.rootfs)
        .args(["--", "/bin/berth-probe", "report"])
        .output()
        .expect("run berth");
    assert!(
        out.status.success(),
        "berth run {opts:?} -- berth-probe report: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe JSON ({e}): stdout {:?}, stderr {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

#[test]
fn busybox_image_is_built_on_first_use_and_runs_the_command() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // Twice: the first run builds the image into the state dir, the second reuses it.
    for _ in 0..2 {
        let out = w.run(&["run", "busybox", "--", "echo", "hello"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hello\n");
    }
}

#[test]
fn exit_status_is_the_commands_own() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for code in [0, 1, 7, 255] {
        let out = run(&w, &[], &["sh", "-c", &format!("exit {code}")]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "sh -c 'exit {code}': {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_command_killed_by_signal_n_gives_128_plus_n() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for (signal, code) in [("9", 137), ("TERM", 143), ("INT", 130)] {
        let out = run(&w, &[], &["sh", "-c", &format!("kill -{signal} $$")]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "sh -c 'kill -{signal} $$': {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_missing_command_gives_127_and_an_unrunnable_one_126() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = run(&w, &[], &["/no/such/command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("/no/such/command"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&w, &[], &["/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
}

#[test]
fn the_default_command_is_a_shell_reading_stdin() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = run_with_stdin(&w, &[], &[], "echo from-stdin\nexit 3\n");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-stdin\n");
}

#[test]
fn stdin_is_piped_through_to_the_command() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = run_with_stdin(&w, &[], &["cat"], "x\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "x\n");
}

#[test]
fn user_sets_uid_and_gid_and_the_home_of_that_user() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.probe(&["--user", "4242:4343"]);
    assert_eq!(
        (r["uid"].as_u64(), r["euid"].as_u64()),
        (Some(4242), Some(4242))
    );
    assert_eq!(
        (r["gid"].as_u64(), r["egid"].as_u64()),
        (Some(4343), Some(4343))
    );
    // Without a group, the user's primary group from the rootfs's /etc/passwd.
    let r = w.probe(&["--user", "4242"]);
    assert_eq!(r["uid"].as_u64(), Some(4242));
    assert_eq!(r["gid"].as_u64(), Some(4242));
    assert_eq!(r["env"]["HOME"], "/home/builder");
    // By default: root.
    let r = w.probe(&[]);
    assert_eq!((r["uid"].as_u64(), r["gid"].as_u64()), (Some(0), Some(0)));
}

#[test]
fn cwd_sets_the_working_directory() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    assert_eq!(w.probe(&["--cwd", "/home/builder"])["cwd"], "/home/builder");
    assert_eq!(w.probe(&[])["cwd"], "/");
}

#[test]
fn the_environment_is_clean_plus_the_env_options() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let mut berth = w.berth();
    berth.env("BERTH_TEST_SECRET", "1");
    let r = report(
        berth,
        &["--env", "GREETING=hello world", "-e", "EMPTY="],
        &w,
    );
    let env = r["env"].as_object().expect("env is an object");
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["EMPTY", "GREETING", "HOME", "PATH", "TERM", "container"],
        "environment inside: {env:?}"
    );
    assert_eq!(env["container"], "berth");
    assert_eq!(env["GREETING"], "hello world");
    assert_eq!(env["EMPTY"], "");
    assert_eq!(env["HOME"], "/root");
    let path = env["PATH"].as_str().expect("PATH is a string");
    assert!(path.split(':').any(|d| d == "/bin"), "PATH={path}");
}

#[test]
fn hostname_is_set_inside_only() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let host_before = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(w.probe(&["--hostname", "web-1"])["hostname"], "web-1");
    let host_after = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(host_before, host_after);
}

#[test]
fn without_t_there_is_no_terminal_and_stdin_is_the_pipe() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let mut berth = w.berth();
    berth.stdin(Stdio::piped());
    let r = report(berth, &[], &w);
    assert_eq!(r["tty"]["stdin"], false, "{}", r["tty"]);
    assert_eq!(r["tty"]["stdout"], false, "{}", r["tty"]);
    assert_eq!(r["tty"]["ttyname"], Value::Null, "{}", r["tty"]);
    let fd0 = r["fds"]["0"].as_str().unwrap_or_default();
    assert!(fd0.starts_with("pipe:"), "fd 0 inside: {fd0:?}");
}

#[test]
fn with_t_the_command_gets_a_terminal() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = report(w.berth(), &["-t"], &w);
    assert_eq!(r["tty"]["stdin"], true, "{}", r["tty"]);
    assert_eq!(r["tty"]["stdout"], true, "{}", r["tty"]);
    let name = r["tty"]["ttyname"].as_str().unwrap_or_default();
    assert!(name.starts_with("/dev/"), "ttyname: {:?}", r["tty"]);
}

/// Runs ARGV under a new pty of ROWSxCOLS (python3's os.openpty). Once the output contains
/// "ready", and if NEW_ROWS is not 0, resizes the pty to NEW_ROWSxNEW_COLS and sends SIGWINCH
/// to ARGV's process, as a terminal emulator does. Prints everything read from the pty, then
/// "exit=STATUS".
const PTY_HELPER: &str = r#"
import fcntl, os, select, signal, struct, subprocess, sys, termios, time

rows, cols, new_rows, new_cols = (int(a) for a in sys.argv[1:5])
argv = sys.argv[5:]

def set_size(fd, r, c):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", r, c, 0, 0))

master, slave = os.openpty()
set_size(slave, rows, cols)
child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
os.close(slave)
out = b""
resized = new_rows == 0
deadline = time.monotonic() + 60

def read_some(timeout):
    global out
    ready, _, _ = select.select([master], [], [], timeout)
    if not ready:
        return None
    try:
        data = os.read(master, 4096)
    except OSError:  # EIO: every slave fd is closed
        return b""
    out += data
    return data

while True:
    if time.monotonic() > deadline:
        child.kill()
        break
    data = read_some(0.2)
    if data == b"":
        break
    if data is None and child.poll() is not None:
        break
    if not resized and b"ready" in out:
        set_size(master, new_rows, new_cols)
        os.kill(child.pid, signal.SIGWINCH)
        resized = True
while read_some(0):
    pass
status = child.wait()
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nexit=%d\n" % status)
"#;

fn python3() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Runs `berth ARGS` under a pty of `size`, resized to `new_size` once the container prints
/// "ready". Returns what was read from the pty and berth's exit status.
fn under_pty(w: &World, size: (u16, u16), new_size: (u16, u16), args: &[&str]) -> (String, i32) {
    let berth = berth_e2e::bin("berth");
    let out = Command::new(python3())
        .args(["-c", PTY_HELPER])
        .args([size.0, size.1, new_size.0, new_size.1].map(|n| n.to_string()))
        .arg(&berth)
        .arg("--root")
        .arg(&w.state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the python3 pty helper");
    assert!(out.status.success(), "pty helper: {}", text(&out.stderr));
    let all = text(&out.stdout);
    let (output, status) = all
        .trim_end()
        .rsplit_once("\nexit=")
        .expect("the helper prints exit=STATUS last");
    (
        output.to_string(),
        status.parse().expect("exit status is a number"),
    )
}

/// The last `{"rows":..,"cols":..}` the probe printed.
fn last_winsize(output: &str) -> Option<(u64, u64)> {
    output.lines().rev().find_map(|l| {
        let v: Value = serde_json::from_str(l.trim()).ok()?;
        Some((v["rows"].as_u64()?, v["cols"].as_u64()?))
    })
}

#[test]
fn the_terminal_gets_the_window_size_of_berths_terminal() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let (output, status) = under_pty(
        &w,
        (33, 101),
        (0, 0),
        &["run", "-t", w.rootfs_str(), "--", "berth-probe", "winsize"],
    );
    assert_eq!(status, 0, "output: {output}");
    assert_eq!(last_winsize(&output), Some((33, 101)), "output: {output}");
}

#[test]
fn a_window_resize_and_sigwinch_to_berth_reach_the_container() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // After "ready" the helper resizes berth's terminal to 40x120 and sends SIGWINCH to
    // berth; the container watches its own terminal's size for a change (for at most about
    // 10 s) and prints the last size it saw.
    let script = r#"first=$(berth-probe winsize)
echo ready
i=0
while [ $i -lt 200 ]; do
  s=$(berth-probe winsize)
  [ "$s" = "$first" ] || break
  berth-probe sleep 0.05
  i=$((i+1))
done
echo "$s""#;
    let (output, status) = under_pty(
        &w,
        (33, 101),
        (40, 120),
        &["run", "-t", w.rootfs_str(), "--", "sh", "-c", script],
    );
    assert_eq!(status, 0, "output: {output}");
    assert_eq!(last_winsize(&output), Some((40, 120)), "output: {output}");
}

/// A background berth, killed (by its PID) if the test ends before it does.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// (pid, ppid, comm) of every process.
fn processes() -> Vec<(u32, u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let (head, tail) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1.to_string();
            let ppid = tail.split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect()
}

/// The descendants of `root` whose command name is `comm`.
fn descendants_named(root: u32, comm: &str) -> Vec<u32> {
    let procs = processes();
    let mut tree = vec![root];
    let mut found = Vec::new();
    while let Some(parent) = tree.pop() {
        for (pid, ppid, name) in &procs {
            if *ppid == parent {
                tree.push(*pid);
                if name == comm {
                    found.push(*pid);
                }
            }
        }
    }
    found
}

/// Waits (at most about 20 s) until a descendant of `root` named `comm` satisfies `ready`.
fn wait_for_descendant(root: u32, comm: &str, ready: impl Fn(u32) -> bool) -> Option<u32> {
    for _ in 0..2000 {
        if let Some(pid) = descendants_named(root, comm)
            .into_iter()
            .find(|p| ready(*p))
        {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Whether process `pid` catches SIGTERM (bit 15 of SigCgt in /proc/PID/status).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

fn send_sigterm(pid: u32) {
    let st = Command::new("kill")
        .args(["-s", "TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -s TERM {pid}");
}

/// Starts `berth run ROOTFS -- CMD...`, waits until the container's `comm` process is
/// `ready`, sends SIGTERM to berth, and returns berth's exit status.
fn sigterm_to_berth(w: &World, cmd: &[&str], comm: &str, ready: impl Fn(u32) -> bool) -> i32 {
    let child = w
        .berth()
        .arg("run")
        .arg(&w.rootfs)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn berth");
    let mut berth = Background(child);
    let pid = berth.0.id();
    let found = wait_for_descendant(pid, comm, ready);
    assert!(found.is_some(), "no {comm} process under berth ({pid})");
    send_sigterm(pid);
    let status = berth.0.wait().expect("wait for berth");
    status
        .code()
        .unwrap_or_else(|| panic!("berth itself died: {status:?}"))
}

#[test]
fn sigterm_to_berth_ends_the_command_with_143() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let code = sigterm_to_berth(&w, &["sleep", "30"], "sleep", |_| true);
    assert_eq!(code, 143);
}

#[test]
fn sigterm_to_berth_reaches_a_command_that_traps_it() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // The probe exits 42 on SIGTERM; wait until its handler is installed.
    let code = sigterm_to_berth(
        &w,
        &["/bin/berth-probe", "trap-sleep", "30"],
        "berth-probe",
        catches_sigterm,
    );
    assert_eq!(code, 42);
}
