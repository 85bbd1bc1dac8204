//! Checks on single pieces of user input: names, hostnames, binds, environment entries, user
//! specifications. Each returns the parsed value or an error that names the input.

use crate::{Bind, SpecError};
use std::path::PathBuf;

/// Container and image names: `[a-z0-9][a-z0-9-]{0,62}`, so that a name is always one safe
/// path component and a valid hostname.
pub fn name(text: &str) -> Result<&str, SpecError> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-');
    if ok {
        Ok(text)
    } else {
        Err(SpecError::Name(text.to_string()))
    }
}

/// Image names (aliases): one or two parts separated by '/', each of lower-case letters,
/// digits, '-', '.' and '_', starting with a letter or digit ("busybox", "debian/bookworm").
pub fn image_name(text: &str) -> Result<&str, SpecError> {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
            })
            && p.as_bytes()[0].is_ascii_alphanumeric()
    };
    let mut parts = text.split('/');
    let ok =
        parts.next().is_some_and(part) && parts.next().is_none_or(part) && parts.next().is_none();
    if ok {
        Ok(text)
    } else {
        Err(SpecError::ImageName(text.to_string()))
    }
}

/// Hostnames as sethostname(2) and RFC 1123 accept them (at most 64 bytes).
pub fn hostname(text: &str) -> Result<&str, SpecError> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(text)
    } else {
        Err(SpecError::Hostname(text.to_string()))
    }
}

/// A path inside the container: absolute, without `..` components.
pub fn container_path(text: &str) -> Result<String, SpecError> {
    if !text.starts_with('/') {
        return Err(SpecError::Path(text.to_string(), "must be absolute"));
    }
    if text.split('/').any(|c| c == "..") {
        return Err(SpecError::Path(text.to_string(), "must not contain '..'"));
    }
    if text.contains('\0') {
        return Err(SpecError::Path(text.to_string(), "must not contain NUL"));
    }
    Ok(text.to_string())
}

/// `SRC:DST[:ro|:rw]`. The source is a host path (its existence is checked by the caller,
/// which may touch the filesystem); the destination is a container path.
pub fn bind(text: &str) -> Result<Bind, SpecError> {
    let err = || SpecError::Bind(text.to_string());
    let parts: Vec<&str> = text.split(':').collect();
    let (src, dst, readonly) = match parts.as_slice() {
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        _ => return Err(err()),
    };
    if !src.starts_with('/') {
        return Err(err());
    }
    let target = container_path(dst).map_err(|_| err())?;
    Ok(Bind {
        source: PathBuf::from(src),
        target,
        readonly,
    })
}

/// `KEY=VALUE`, with a non-empty key that has no '=' and no NUL.
pub fn env(text: &str) -> Result<(String, String), SpecError> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !text.contains('\0') => Ok((k.to_string(), v.to_string())),
        _ => Err(SpecError::Env(text.to_string())),
    }
}

/// `UID[:GID]`, numeric.
pub fn user(text: &str) -> Result<(u32, Option<u32>), SpecError> {
    let err = || SpecError::User(text.to_string());
    let (u, g) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid = u.parse::<u32>().map_err(|_| err())?;
    let gid = g.map(|g| g.parse::<u32>().map_err(|_| err())).transpose()?;
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        for good in ["busybox", "debian/bookworm", "ubuntu/24.04", "my_img-2"] {
            assert!(image_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/x", "x/", "a/b/c", "../x", "x/..", "Debian", ".x", "a b", "a//b",
        ] {
            assert!(image_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(name("web-1").is_ok());
        for bad in [
            "",
            "../x",
            "a/b",
            "Web",
            "-a",
            &"a".repeat(64),
            "a b",
            "a.b",
        ] {
            assert!(name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hostnames() {
        assert!(hostname("web.example").is_ok());
        for bad in ["", "a..b", "-a", "a_b", &"a".repeat(65)] {
            assert!(hostname(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn binds() {
        let b = bind("/srv:/data:ro").expect("valid");
        assert_eq!(b.source, PathBuf::from("/srv"));
        assert_eq!(b.target, "/data");
        assert!(b.readonly);
        assert!(!bind("/srv:/data").expect("valid").readonly);
        for bad in [
            "/srv",
            "srv:/data",
            "/srv:data",
            "/srv:/a/../b",
            "/srv:/d:rx",
            "/a:/b:ro:x",
        ] {
            assert!(bind(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn envs() {
        assert_eq!(env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(env("A="), Ok(("A".into(), String::new())));
        assert!(env("=x").is_err());
        assert!(env("noequals").is_err());
    }

    #[test]
    fn users() {
        assert_eq!(user("1000"), Ok((1000, None)));
        assert_eq!(user("1000:50"), Ok((1000, Some(50))));
        assert!(user("bob").is_err());
        assert!(user("1:x").is_err());
    }
}
