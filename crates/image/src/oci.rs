//! `berth image import-oci DIR[:TAG]`: an OCI image layout directory (what `skopeo copy …
//! oci:DIR` or `podman save --format oci-dir` write) as an image: its layers applied in
//! order, their whiteouts honoured, each blob checked against its sha256 digest.

use crate::tarball::Unpacker;
use crate::{Error, Images, Metadata};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Manifest {
    layers: Vec<Descriptor>,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Imports `spec` (`DIR` or `DIR:TAG`) as a new image.
pub fn import(images: &Images, spec: &str, alias: Option<&str>) -> Result<crate::Image, Error> {
    let (dir, tag) = split_spec(spec);
    let bad = |what: String| Error::Bad(spec.to_string(), what);
    if !dir.join("oci-layout").is_file() {
        return Err(bad(format!(
            "{} is not an OCI image layout (no oci-layout file)",
            dir.display()
        )));
    }
    let index: Index = read_json(&dir.join("index.json"), None).map_err(|e| bad(e.to_string()))?;
    let chosen = choose(&index.manifests, tag.as_deref()).map_err(bad)?;
    let manifest = resolve_manifest(&dir, &chosen).map_err(|e| bad(e.to_string()))?;

    let description = format!(
        "OCI {}{}",
        dir.display(),
        tag.map(|t| format!(":{t}")).unwrap_or_default()
    );
    let mut meta = Metadata::new("oci", &description);
    meta.os = Some("linux".into());
    images.build(alias, meta, |rootfs| {
        let mut unpacker = Unpacker::new(rootfs)?;
        for layer in &manifest.layers {
            verify_blob(&dir, &layer.digest)?;
            let reader = open_layer(&dir, layer).map_err(|e| bad(e.to_string()))?;
            unpacker.apply_layer(decompress(&layer.media_type, reader).map_err(bad)?)?;
        }
        Ok(Some(unpacker.written()))
    })
}

/// `DIR:TAG` → (DIR, TAG); a path alone has no tag.
fn split_spec(spec: &str) -> (PathBuf, Option<String>) {
    match spec.rsplit_once(':') {
        Some((d, t)) if !t.is_empty() && !t.contains('/') && Path::new(d).is_dir() => {
            (PathBuf::from(d), Some(t.to_string()))
        }
        _ => (PathBuf::from(spec), None),
    }
}

/// The manifest for `tag` (by its ref.name annotation), or the only one.
fn choose(manifests: &[Descriptor], tag: Option<&str>) -> Result<Descriptor, String> {
    let tags: Vec<&str> = manifests
        .iter()
        .filter_map(|m| m.annotations.get(REF_NAME).map(String::as_str))
        .collect();
    match tag {
        Some(t) => manifests
            .iter()
            .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(t))
            .cloned()
            .ok_or_else(|| format!("no tag {t:?} in the layout (it has: {})", tags.join(", "))),
        None if manifests.len() == 1 => Ok(manifests[0].clone()),
        None => Err(format!(
            "the layout holds several images: name one as DIR:TAG ({})",
            tags.join(", ")
        )),
    }
}

/// Follows an image index (several platforms) down to this machine's manifest.
fn resolve_manifest(dir: &Path, desc: &Descriptor) -> Result<Manifest, Error> {
    let mut desc = desc.clone();
    for _ in 0..4 {
        let value: serde_json::Value =
            read_json(&blob_path(dir, &desc.digest)?, Some(&desc.digest))?;
        if value.get("layers").is_some() {
            return serde_json::from_value(value)
                .map_err(|e| Error::Bad(desc.digest.clone(), e.to_string()));
        }
        let index: Index = serde_json::from_value(value)
            .map_err(|e| Error::Bad(desc.digest.clone(), e.to_string()))?;
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        // This machine's platform; a single entry without one is taken as it is.
        let unplatformed = index.manifests.len() == 1 && index.manifests[0].platform.is_none();
        desc = index
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.architecture == arch && p.os == "linux")
            })
            .or(index.manifests.first().filter(|_| unplatformed))
            .cloned()
            .ok_or_else(|| {
                Error::Bad(
                    desc.digest.clone(),
                    format!("the image has no linux/{arch} variant"),
                )
            })?;
    }
    Err(Error::Bad(
        desc.digest,
        "image indexes nested too deep".into(),
    ))
}

/// `blobs/sha256/HEX` for a `sha256:HEX` digest (anything else is refused: a digest names
/// a file, and must not name one elsewhere).
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, Error> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            Error::Bad(
                digest.to_string(),
                "unsupported digest (sha256 only)".into(),
            )
        })?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// A small JSON file (at most 4 MiB), checked against `digest` when given.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    digest: Option<&str>,
) -> Result<T, Error> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(Error::io("open", path))?
        .take(4 << 20)
        .read_to_end(&mut bytes)
        .map_err(Error::io("read", path))?;
    if let Some(d) = digest
        && format!("sha256:{}", hex(&Sha256::digest(&bytes))) != d
    {
        return Err(Error::Bad(
            d.to_string(),
            "the blob does not match its digest".into(),
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Bad(path.display().to_string(), e.to_string()))
}

fn open_layer(dir: &Path, layer: &Descriptor) -> Result<Box<dyn Read>, Error> {
    let path = blob_path(dir, &layer.digest)?;
    let f = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

fn decompress(media_type: &str, reader: Box<dyn Read>) -> Result<Box<dyn Read>, String> {
    Ok(
        if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else if media_type.ends_with("+zstd") {
            Box::new(zstd::stream::read::Decoder::new(reader).map_err(|e| e.to_string())?)
        } else if media_type.ends_with(".tar")
            || media_type.ends_with("layer.v1.tar")
            || media_type.is_empty()
        {
            reader
        } else {
            return Err(format!("unsupported layer type {media_type:?}"));
        },
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that the blob's sha256 is its digest, before anything of it is used.
fn verify_blob(dir: &Path, digest: &str) -> Result<(), Error> {
    let path = blob_path(dir, digest)?;
    let mut f = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::io("read", &path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if format!("sha256:{}", hex(&hasher.finalize())) == digest.to_ascii_lowercase() {
        Ok(())
    } else {
        Err(Error::Bad(
            digest.to_string(),
            "the blob does not match its digest".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_digests() {
        let tmp = std::env::temp_dir();
        let spec = format!("{}:latest", tmp.display());
        assert_eq!(split_spec(&spec), (tmp.clone(), Some("latest".into())));
        assert_eq!(
            split_spec("/no/such:dir"),
            (PathBuf::from("/no/such:dir"), None)
        );
        assert!(blob_path(&tmp, "sha256:../../etc/passwd").is_err());
        assert!(blob_path(&tmp, "md5:abc").is_err());
        assert!(blob_path(&tmp, &format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
