//! A container's cgroup: one directory per hierarchy, created together, limited, joined and
//! removed together. The directories are owned: dropping a [`Cgroup`] removes them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::fsio::{self, read_file, write_file};
use crate::limits::{LIMIT_CONTROLLERS, Limits, validate, writes};
use crate::{Error, Layout, V1Hierarchy, Version, kill, v1, v2};

/// How long [`Cgroup::remove`] keeps retrying `rmdir`: killed tasks keep a cgroup busy
/// (EBUSY) until they have finished exiting, which takes milliseconds, longer under load.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY_FIRST: Duration = Duration::from_micros(100);
const RETRY_MAX: Duration = Duration::from_millis(10);

/// Which kind of tree a directory lives in; file names and kill strategy differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    V1,
    V2,
}

/// What berth knows about one directory it created.
#[derive(Debug)]
struct Dir {
    tree: Tree,
    /// Controllers whose files this directory has.
    controllers: Vec<String>,
    /// How /proc/PID/cgroup names this hierarchy (`cpu,cpuacct`, `name=systemd`); v1 only.
    proc_name: String,
}

/// A cgroup made of one directory directly under the root of each mounted hierarchy.
#[derive(Debug)]
pub struct Cgroup {
    paths: Vec<PathBuf>,
    /// Index-aligned with `paths`.
    dirs: Vec<Dir>,
    /// The v2 directory, kept open on a pure v2 host for `clone3(CLONE_INTO_CGROUP)`.
    v2_fd: Option<OwnedFd>,
    pure_v2: bool,
    /// Found, not created by us: never removed implicitly.
    adopted: bool,
}

impl Cgroup {
    /// Creates `name` (one path component, e.g. "berth-run-1234-5") directly under the root
    /// of every hierarchy of `layout`: all v1 hierarchies, plus the cgroup2 mount if present.
    ///
    /// A new v1 cpuset gets the parent's CPUs and memory nodes, or no task could join it. On
    /// v2, the parent's `cgroup.subtree_control` is made to enable whichever of cpu, memory
    /// and pids it offers, so that [`Cgroup::apply`] finds their files. Fails with
    /// [`Error::Exists`] when a directory is already there (another container's, most likely:
    /// sharing it would mix their limits). On any failure, what was created is removed again.
    pub fn create(layout: &Layout, name: &str) -> Result<Cgroup, Error> {
        let _span = tracing::debug_span!("cgroup_create", name).entered();
        check_name(name)?;
        let count = layout.v1.len() + usize::from(layout.unified.is_some());
        // From here on, an early return drops `cgroup`, which removes what exists so far.
        let mut cgroup = Cgroup {
            paths: Vec::with_capacity(count),
            dirs: Vec::with_capacity(count),
            v2_fd: None,
            pure_v2: false,
            adopted: false,
        };
        for hierarchy in &layout.v1 {
            cgroup.create_v1(hierarchy, name)?;
        }
        if let Some(root) = &layout.unified {
            let path = cgroup.create_v2(root, name)?;
            cgroup.v2_fd = Some(open_dir(&path)?);
            cgroup.pure_v2 = layout.version == Version::V2;
        }
        Ok(cgroup)
    }

    fn create_v1(&mut self, hierarchy: &V1Hierarchy, name: &str) -> Result<(), Error> {
        let path = hierarchy.mount_point.join(name);
        make_dir(&path)?;
        self.paths.push(path.clone());
        self.dirs.push(Dir {
            tree: Tree::V1,
            controllers: hierarchy.controllers.clone(),
            proc_name: hierarchy
                .options
                .split(',')
                .filter(|o| *o != "none")
                .collect::<Vec<_>>()
                .join(","),
        });
        if hierarchy.controllers.iter().any(|c| c == "cpuset") {
            v1::inherit_cpuset(&hierarchy.mount_point, &path)?;
        }
        Ok(())
    }

    fn create_v2(&mut self, root: &Path, name: &str) -> Result<PathBuf, Error> {
        // Before mkdir, so that a refusal leaves nothing behind to undo.
        let controllers = v2::delegate_controllers(root, &LIMIT_CONTROLLERS)?;
        let path = root.join(name);
        make_dir(&path)?;
        self.paths.push(path.clone());
        self.dirs.push(Dir {
            tree: Tree::V2,
            controllers,
            proc_name: String::new(),
        });
        Ok(path)
    }

    /// An existing container cgroup, from its directories (recorded in a container's state
    /// by the process that created it): to kill, freeze, inspect or [`Cgroup::remove`] it.
    /// Unlike a created one it is not removed when dropped: it belongs to a container that
    /// may well be running. Directories that are already gone are left out.
    pub fn adopt(paths: &[PathBuf]) -> Cgroup {
        let mut cgroup = Cgroup {
            paths: Vec::new(),
            dirs: Vec::new(),
            v2_fd: None,
            pure_v2: false,
            adopted: true,
        };
        for p in paths.iter().filter(|p| p.is_dir()) {
            let (tree, controllers) = match read_file(&p.join("cgroup.controllers")) {
                Ok(list) => (
                    Tree::V2,
                    list.split_ascii_whitespace().map(str::to_owned).collect(),
                ),
                Err(_) => (Tree::V1, v1::controllers_of(p)),
            };
            cgroup.paths.push(p.clone());
            cgroup.dirs.push(Dir {
                tree,
                controllers,
                proc_name: String::new(),
            });
        }
        cgroup
    }

    /// Sends SIGKILL to every process inside (v2: `cgroup.kill`; v1: each listed pid).
    pub fn kill_all(&self) -> Result<(), Error> {
        for (path, dir) in self.paths.iter().zip(&self.dirs) {
            let killed = match dir.tree {
                Tree::V2 => v2::kill_all(path)?,
                Tree::V1 => false,
            };
            if !killed && path.join("cgroup.procs").exists() {
                kill::kill_listed(path)?;
            }
        }
        Ok(())
    }

    /// Freezes (or thaws) every process inside: v1 `freezer.state`, v2 `cgroup.freeze`.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), Error> {
        for path in &self.paths {
            let (file, value) = if path.join("freezer.state").exists() {
                ("freezer.state", if frozen { "FROZEN" } else { "THAWED" })
            } else if path.join("cgroup.freeze").exists() {
                ("cgroup.freeze", if frozen { "1" } else { "0" })
            } else {
                continue;
            };
            write_file(&path.join(file), value)?;
        }
        Ok(())
    }

    /// Whether the cgroup is frozen (or freezing).
    pub fn is_frozen(&self) -> bool {
        self.paths
            .iter()
            .zip(&self.dirs)
            .any(|(p, dir)| match dir.tree {
                Tree::V1 => std::fs::read_to_string(p.join("freezer.state"))
                    .is_ok_and(|s| s.trim() != "THAWED"),
                Tree::V2 => {
                    std::fs::read_to_string(p.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
                }
            })
    }

    /// What the container uses, and its limits as the kernel holds them.
    pub fn usage(&self) -> crate::Usage {
        crate::usage::read_usage(&self.paths)
    }

    /// Memory in use, in bytes (v1 memory.usage_in_bytes, v2 memory.current).
    pub fn memory_bytes(&self) -> Option<u64> {
        self.paths.iter().find_map(|p| {
            ["memory.current", "memory.usage_in_bytes"]
                .iter()
                .find_map(|f| std::fs::read_to_string(p.join(f)).ok())
                .and_then(|s| s.trim().parse().ok())
        })
    }

    /// CPU time used, in nanoseconds (v1 cpuacct.usage, v2 cpu.stat usage_usec).
    pub fn cpu_nanos(&self) -> Option<u64> {
        self.paths.iter().find_map(|p| {
            if let Ok(s) = std::fs::read_to_string(p.join("cpuacct.usage")) {
                return s.trim().parse().ok();
            }
            let stat = std::fs::read_to_string(p.join("cpu.stat")).ok()?;
            stat.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|us| us * 1000)
        })
    }

    /// Hands the parts of this cgroup that an init manages itself to the container's root
    /// (host ids `uid`/`gid`), as the kernel's cgroup v2 delegation model describes: the
    /// directory and its cgroup.procs, cgroup.threads and cgroup.subtree_control in a cgroup2
    /// tree, and the whole directory of the v1 `name=systemd` hierarchy (which has no
    /// resource files). Limit files stay the host's: the container cannot raise its limits.
    pub fn delegate(&self, uid: u32, gid: u32) -> Result<(), Error> {
        let owner = |path: &Path| {
            rustix::fs::chown(
                path,
                Some(rustix::process::Uid::from_raw(uid)),
                Some(rustix::process::Gid::from_raw(gid)),
            )
            .map_err(|e| Error::Write {
                path: path.to_path_buf(),
                source: e.into(),
            })
        };
        for (path, dir) in self.paths.iter().zip(&self.dirs) {
            match dir.tree {
                Tree::V2 => {
                    owner(path)?;
                    for f in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
                        if path.join(f).exists() {
                            owner(&path.join(f))?;
                        }
                    }
                }
                Tree::V1 if dir.proc_name == "name=systemd" => {
                    owner(path)?;
                    let entries = std::fs::read_dir(path).map_err(|source| Error::Read {
                        path: path.clone(),
                        source,
                    })?;
                    for e in entries.flatten() {
                        owner(&e.path())?;
                    }
                }
                Tree::V1 => {}
            }
        }
        Ok(())
    }

    /// The processes directly in the cgroup (from its first directory's cgroup.procs).
    pub fn pids(&self) -> Vec<i32> {
        self.paths
            .first()
            .and_then(|p| std::fs::read_to_string(p.join("cgroup.procs")).ok())
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Forgets the directories without removing them (they belong to a running container
    /// whose supervisor removes them).
    pub fn release(mut self) {
        self.paths.clear();
        self.dirs.clear();
    }

    /// Writes `limits` into a new cgroup: see [`Cgroup::update`].
    pub fn apply(&self, limits: &Limits) -> Result<(), Error> {
        self.update(&Limits::default(), limits)
    }

    /// Puts `new` in place of `old` (what the cgroup holds now), writing only what changed
    /// and giving keys no longer set the kernel's default back, in the order the kernel
    /// needs (see [`crate::TABLE`]). Every file is found before the first is written: a
    /// limit whose controller or file this host lacks fails with nothing changed
    /// ([`Error::MissingController`], [`Error::Unsupported`]).
    pub fn update(&self, old: &Limits, new: &Limits) -> Result<(), Error> {
        let _span = tracing::debug_span!("cgroup_apply", ?new).entered();
        validate(new)?;
        let mut planned: Vec<(PathBuf, &'static str, String, bool)> = Vec::new();
        for tree in [Tree::V1, Tree::V2] {
            if !self.dirs.iter().any(|d| d.tree == tree) {
                continue;
            }
            for w in writes(old, new, tree == Tree::V2) {
                let Some(path) = self
                    .paths
                    .iter()
                    .zip(&self.dirs)
                    .find(|(_, d)| {
                        d.tree == tree && d.controllers.iter().any(|c| c == w.controller)
                    })
                    .map(|(p, _)| p)
                else {
                    continue;
                };
                let Some((file, value)) =
                    w.choices.iter().find(|(file, _)| path.join(file).exists())
                else {
                    return Err(Error::Unsupported {
                        key: w.key,
                        files: w
                            .choices
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(" or "),
                        path: path.clone(),
                    });
                };
                planned.push((path.join(file), w.key, value.clone(), w.from_parent));
            }
        }
        // A key that changed must have found its controller in one of the trees.
        let pure_v2 = self.dirs.iter().all(|d| d.tree == Tree::V2);
        for w in writes(old, new, pure_v2) {
            if !planned.iter().any(|(_, key, _, _)| *key == w.key) {
                return Err(Error::MissingController {
                    controller: w.controller,
                });
            }
        }
        for (file, key, value, from_parent) in planned {
            let value = match (from_parent, file.parent().and_then(Path::parent)) {
                (true, Some(parent_dir)) => {
                    let name = file.file_name().map(PathBuf::from).unwrap_or_default();
                    read_file(&parent_dir.join(name))?.trim().to_string()
                }
                _ => value,
            };
            fsio::write(&file, &value).map_err(|source| Error::Limit {
                key,
                path: file.clone(),
                value: value.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Moves process `pid` (all its threads) into every directory of this cgroup.
    pub fn attach(&self, pid: i32) -> Result<(), Error> {
        let _span = tracing::debug_span!("cgroup_attach", pid).entered();
        let value = pid.to_string();
        for path in &self.paths {
            let procs = path.join("cgroup.procs");
            fsio::write(&procs, &value).map_err(|source| Error::Attach {
                path: procs,
                pid,
                source,
            })?;
        }
        Ok(())
    }

    /// On a pure v2 host, the cgroup directory opened `O_PATH`, to pass to `clone3` with
    /// `CLONE_INTO_CGROUP` so the child starts inside its limits with no attach step. `None`
    /// on v1 and hybrid hosts, where a child must be attached to the v1 hierarchies anyway.
    pub fn v2_fd(&self) -> Option<BorrowedFd<'_>> {
        self.v2_fd
            .as_ref()
            .filter(|_| self.pure_v2)
            .map(AsFd::as_fd)
    }

    /// The cgroup2 directory (pure v2, or the unified tree of a hybrid host) for
    /// `clone3(CLONE_INTO_CGROUP)`, which places a child there without taking the kernel's
    /// global process-move lock.
    pub fn clone_fd(&self) -> Option<BorrowedFd<'_>> {
        self.v2_fd.as_ref().map(AsFd::as_fd)
    }

    /// Moves the calling thread into this cgroup's v1 directories, so that a child it
    /// creates next is born there; [`V1Stay::leave`] moves it back.
    ///
    /// Why not attach the child afterwards: writing a pid to `cgroup.procs` takes the
    /// kernel's global threadgroup lock for writing, which waits for an RCU grace period
    /// (5-9 ms measured on this kind of host), while a thread moving itself through `tasks`
    /// skips that lock. The caller must be single-threaded, so the thread is the process.
    pub fn enter_v1(&self) -> Result<V1Stay, Error> {
        let mut stay = V1Stay { back: Vec::new() };
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|source| Error::Read {
            path: PathBuf::from("/proc/self/cgroup"),
            source,
        })?;
        for (path, dir) in self.paths.iter().zip(&self.dirs) {
            if dir.tree != Tree::V1 {
                continue;
            }
            let Some(root) = path.parent() else { continue };
            let Some(current) = own_path(&own, &dir.proc_name) else {
                continue;
            };
            let tasks = path.join("tasks");
            fsio::write(&tasks, "0").map_err(|source| Error::Attach {
                path: tasks,
                pid: 0,
                source,
            })?;
            stay.back
                .push(root.join(current.trim_start_matches('/')).join("tasks"));
        }
        Ok(stay)
    }

    /// The directories, one per hierarchy, in the layout's order (v1 first, then cgroup2).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Kills whatever is still inside and removes every directory, with any child cgroups
    /// the container made below them.
    ///
    /// v2 uses `cgroup.kill`, which cannot miss a process forked meanwhile; v1 (and kernels
    /// before 5.14) get SIGKILL per listed pid, repeated until the list is empty. `rmdir`
    /// fails with EBUSY until killed tasks have exited, so it is retried for up to 2 s; after
    /// that the error names the directory still there.
    ///
    /// The calling process must not be inside: it would be killed with the rest.
    pub fn remove(mut self) -> Result<(), Error> {
        self.teardown()
    }

    /// Removes every directory, once: afterwards the cgroup owns nothing, whatever the outcome
    /// (so `Drop` does not wait another 2 s for a directory that will not go).
    fn teardown(&mut self) -> Result<(), Error> {
        let _span = tracing::debug_span!("cgroup_remove").entered();
        self.v2_fd = None;
        let mut first_error = None;
        let mut pending: Vec<(PathBuf, bool)> = Vec::with_capacity(self.paths.len());
        for (path, dir) in self.paths.drain(..).zip(self.dirs.drain(..)) {
            let killed_by_kernel = match dir.tree {
                Tree::V2 => v2::kill_all(&path).unwrap_or_else(|e| {
                    first_error.get_or_insert(e);
                    false
                }),
                Tree::V1 => false,
            };
            pending.push((path, !killed_by_kernel));
        }
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        let mut delay = RETRY_FIRST;
        loop {
            pending.retain(
                |(path, kill_by_pid)| match remove_tree(path, *kill_by_pid) {
                    Ok(gone) => !gone,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        false
                    }
                },
            );
            let Some((busy, _)) = pending.first() else {
                break;
            };
            if Instant::now() >= deadline {
                return Err(first_error.unwrap_or_else(|| remove_error(busy, Errno::BUSY)));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(RETRY_MAX);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Cgroup {
    /// Best effort: a cgroup left behind keeps its name taken and its limits in the kernel.
    fn drop(&mut self) {
        if self.paths.is_empty() || self.adopted {
            return;
        }
        if let Err(error) = self.teardown() {
            tracing::warn!(error = %chain(&error), "could not remove a cgroup");
        }
    }
}

/// A cgroup name must stay one directory directly under each root: no separator, no `..`,
/// and no control characters, which would garble `/proc/PID/cgroup` for its readers.
fn check_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn make_dir(path: &Path) -> Result<(), Error> {
    rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)).map_err(|errno| match errno {
        Errno::EXIST => Error::Exists {
            path: path.to_owned(),
        },
        errno => Error::CreateDir {
            path: path.to_owned(),
            source: errno.into(),
        },
    })
}

/// `O_PATH` is enough: `CLONE_INTO_CGROUP` only needs the fd to name the directory.
fn open_dir(path: &Path) -> Result<OwnedFd, Error> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty()).map_err(|errno| Error::OpenDir {
        path: path.to_owned(),
        source: errno.into(),
    })
}

/// One attempt at removing `dir` and the cgroups below it; `Ok(true)` once it is gone.
///
/// A container may have made child cgroups of its own (systemd inside one does), and the
/// kernel refuses to remove a cgroup that has children, so those go first, deepest first.
/// The walk only happens when a plain `rmdir` fails, keeping the common case to one syscall.
fn remove_tree(dir: &Path, kill_by_pid: bool) -> Result<bool, Error> {
    if kill_by_pid {
        kill::kill_listed(dir)?;
    }
    if try_rmdir(dir)? {
        return Ok(true);
    }
    let mut children_gone = true;
    for child in child_cgroups(dir)? {
        children_gone &= remove_tree(&child, kill_by_pid)?;
    }
    if children_gone {
        return try_rmdir(dir);
    }
    Ok(false)
}

/// `rmdir`; `Ok(false)` while the cgroup is still busy with tasks or children.
fn try_rmdir(dir: &Path) -> Result<bool, Error> {
    match rustix::fs::rmdir(dir) {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(Errno::BUSY | Errno::NOTEMPTY) => Ok(false),
        Err(errno) => Err(remove_error(dir, errno)),
    }
}

/// The child cgroups of `dir`: its subdirectories (every other entry is a control file).
fn child_cgroups(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let list_error = |source| Error::ListChildren {
        path: dir.to_owned(),
        source,
    };
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        if entry.file_type().map_err(list_error)?.is_dir() {
            children.push(entry.path());
        }
    }
    Ok(children)
}

fn remove_error(path: &Path, errno: Errno) -> Error {
    Error::Remove {
        path: path.to_owned(),
        source: errno.into(),
    }
}

/// "step: cause: cause" for a log line, where nobody else will print the chain.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_one_plain_component() {
        for good in ["berth-run-1234-5", "web", "a.b", "x_y"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(256);
        for bad in ["", ".", "..", "a/b", "/a", "a\nb", "a\0b", long.as_str()] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn chain_joins_causes() {
        let error = Error::Remove {
            path: PathBuf::from("/sys/fs/cgroup/x"),
            source: Errno::BUSY.into(),
        };
        let text = chain(&error);
        assert!(
            text.starts_with("remove cgroup directory /sys/fs/cgroup/x: "),
            "{text}"
        );
        assert!(text.contains("busy"), "{text}");
    }
}

/// The calling thread's stay in a container's v1 cgroups (see [`Cgroup::enter_v1`]).
#[derive(Debug)]
#[must_use = "leave() moves the caller back to its own cgroups"]
pub struct V1Stay {
    back: Vec<PathBuf>,
}

impl V1Stay {
    /// Moves the calling thread back to the cgroups it was in.
    /// Tries every hierarchy, even after a failure, and reports the first failure.
    pub fn leave(self) -> Result<(), Error> {
        let mut first = None;
        for tasks in &self.back {
            if let Err(source) = fsio::write(tasks, "0") {
                first.get_or_insert(Error::Attach {
                    path: tasks.clone(),
                    pid: 0,
                    source,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The caller's path in the v1 hierarchy named `proc_name` (as /proc/self/cgroup lists it:
/// `ID:cpu,cpuacct:PATH`, `ID:name=systemd:PATH`). The order of names is the kernel's.
fn own_path<'a>(text: &'a str, proc_name: &str) -> Option<&'a str> {
    let mut want: Vec<&str> = proc_name.split(',').collect();
    want.sort_unstable();
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, list, path) = (f.next()?, f.next()?, f.next()?);
        let mut names: Vec<&str> = list.split(',').collect();
        names.sort_unstable();
        (!list.is_empty() && names == want).then_some(path)
    })
}

#[cfg(test)]
mod own_path_tests {
    use super::own_path;

    #[test]
    fn finds_named_and_co_mounted_hierarchies() {
        let t = "9:name=systemd:/a\n4:cpu,cpuacct:/b\n1:memory:/c\n0::/d\n";
        assert_eq!(own_path(t, "name=systemd"), Some("/a"));
        assert_eq!(own_path(t, "cpuacct,cpu"), Some("/b"));
        assert_eq!(own_path(t, "memory"), Some("/c"));
        assert_eq!(own_path(t, "cpu"), None);
    }
}
