//! Reading /etc/passwd and /etc/group text from a root filesystem, so that user and group
//! names resolve inside NEWROOT as chroot(8) resolves them, never through the host's NSS.

/// One /etc/passwd entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses passwd text, skipping malformed lines and NIS `+`/`-` entries.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('+') && !l.starts_with('-') && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// Parses group text, skipping malformed lines.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('+') && !l.starts_with('-') && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves a user given by name or number. A number that is not in the file is accepted
/// as it is, as chroot(8) does.
pub fn lookup_user<'a>(entries: &'a [PasswdEntry], spec: &str) -> Option<UserRef<'a>> {
    if let Some(e) = entries.iter().find(|e| e.name == spec) {
        return Some(UserRef::Entry(e));
    }
    let uid: u32 = spec.parse().ok()?;
    Some(match entries.iter().find(|e| e.uid == uid) {
        Some(e) => UserRef::Entry(e),
        None => UserRef::Number(uid),
    })
}

/// A resolved user: a passwd entry or a bare number.
#[derive(Debug, PartialEq)]
pub enum UserRef<'a> {
    Entry(&'a PasswdEntry),
    Number(u32),
}

/// Resolves a group given by name or number.
pub fn lookup_group(entries: &[GroupEntry], spec: &str) -> Option<u32> {
    if let Some(e) = entries.iter().find(|e| e.name == spec) {
        return Some(e.gid);
    }
    spec.parse().ok()
}

/// The supplementary groups of `user` as initgroups(3) computes them: the primary group
/// first, then every group that lists the user as a member.
pub fn groups_of(entries: &[GroupEntry], user: &str, primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for g in entries {
        if g.members.iter().any(|m| m == user) && !out.contains(&g.gid) {
            out.push(g.gid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbad line\nbuilder:x:1000:1000::/home/builder:/bin/bash\n+nis\n";
    const GROUP: &str = "root:x:0:\nsbuild:x:120:builder,other\nbuilder:x:1000:\nbad\n";

    #[test]
    fn parses_and_looks_up() {
        let p = parse_passwd(PASSWD);
        assert_eq!(p.len(), 2);
        assert_eq!(lookup_user(&p, "builder"), Some(UserRef::Entry(&p[1])));
        assert_eq!(lookup_user(&p, "0"), Some(UserRef::Entry(&p[0])));
        assert_eq!(lookup_user(&p, "4242"), Some(UserRef::Number(4242)));
        assert_eq!(lookup_user(&p, "nobody"), None);
        let g = parse_group(GROUP);
        assert_eq!(g.len(), 3);
        assert_eq!(lookup_group(&g, "sbuild"), Some(120));
        assert_eq!(lookup_group(&g, "77"), Some(77));
        assert_eq!(lookup_group(&g, "nogroup"), None);
        assert_eq!(groups_of(&g, "builder", 1000), vec![1000, 120]);
    }
}
