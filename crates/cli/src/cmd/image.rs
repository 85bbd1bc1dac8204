//! `berth image …`: list, build, import, export, delete.

use super::system::{Format, fail};
use crate::Failure;
use berth_image::Images;
use berth_store::Store;
use clap::{Args, Subcommand};
use std::path::Path;

#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    op: ImageOp,
}

#[derive(Subcommand, Debug)]
enum ImageOp {
    /// List the images.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Build an image: `busybox` (from the host's busybox-static) or `debian` (with
    /// debootstrap; `--mirror` an Ubuntu mirror and an Ubuntu release for Ubuntu).
    Build {
        /// What to build: busybox or debian.
        kind: String,
        /// The name to give it (default: busybox, debian/RELEASE).
        #[arg(long)]
        alias: Option<String>,
        /// debian: the release (bookworm, trixie, ...).
        #[arg(long, default_value = "bookworm")]
        release: String,
        /// debian: minbase (the essential packages and apt) or standard.
        #[arg(long, default_value = "minbase")]
        variant: String,
        /// debian: more packages, comma-separated.
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
        /// debian: the mirror (default: BERTH_DEBIAN_MIRROR, else the host's apt sources).
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Import a root filesystem tarball (.tar, .tar.gz, .tar.xz, .tar.zst) or an LXC/Incus
    /// image (a tarball of metadata.yaml and rootfs/) as an image.
    Import {
        file: std::path::PathBuf,
        /// For an LXC/Incus image in two files: FILE is its metadata tarball and this its
        /// root filesystem (squashfs; needs squashfs-tools-ng).
        rootfs: Option<std::path::PathBuf>,
        /// The name to give it.
        #[arg(long)]
        alias: Option<String>,
        /// Move the name from the image that has it (kept, unnamed).
        #[arg(long)]
        replace: bool,
    },
    /// Import an OCI image layout directory (`skopeo copy docker://… oci:DIR:TAG`, `podman
    /// save --format oci-dir`): DIR, or DIR:TAG when it holds several images.
    #[command(name = "import-oci")]
    ImportOci {
        spec: String,
        /// The name to give it.
        #[arg(long)]
        alias: Option<String>,
        /// Move the name from the image that has it (kept, unnamed).
        #[arg(long)]
        replace: bool,
    },
    /// Write an image's root filesystem to a tarball, compressed as FILE's name says
    /// (.tar.gz, .tar.xz, .tar.zst or .tar).
    Export {
        name: String,
        file: std::path::PathBuf,
    },
    /// Delete an image. Refused while containers are made from it, unless --force: then its
    /// name goes at once and its files when the last of those containers is deleted.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

pub fn main(root: &Path, a: ImageArgs) -> Result<u8, Failure> {
    let store = Store::open(root).map_err(fail)?;
    let images = Images::open(&store).map_err(fail)?;
    match a.op {
        ImageOp::List { format } => list(&images, format),
        ImageOp::Build {
            kind,
            alias,
            release,
            variant,
            include,
            mirror,
        } => {
            let image = match kind.as_str() {
                "busybox" => berth_image::busybox::build_image(&images, alias.as_deref()),
                "debian" | "ubuntu" => {
                    let opts = berth_image::debian::Options {
                        alias: Some(alias.unwrap_or_else(|| format!("{kind}/{release}"))),
                        release,
                        variant,
                        include,
                        mirror: mirror.unwrap_or_else(berth_image::debian::configured_mirror),
                        os: kind.clone(),
                    };
                    let mut err = std::io::stderr();
                    let tty = rustix::termios::isatty(rustix::stdio::stderr());
                    berth_image::debian::build(&images, &opts, &mut err, tty)
                }
                other => {
                    return Err(fail(anyhow::anyhow!(
                        "cannot build {other:?}: berth builds busybox and debian (or ubuntu, with --mirror)"
                    )));
                }
            }
            .map_err(fail)?;
            println!("{} {}", image.id, image.aliases.join(","));
            Ok(0)
        }
        ImageOp::Import {
            file,
            rootfs,
            alias,
            replace,
        } => {
            if let Some(a) = &alias {
                images.check_alias(a, replace).map_err(fail)?;
            }
            let image = match &rootfs {
                Some(squashfs) => {
                    berth_image::tarball::import_split(&images, &file, squashfs, alias.as_deref())
                }
                None => berth_image::tarball::import(&images, &file, alias.as_deref()),
            }
            .map_err(fail)?;
            println!("{} {}", image.id, image.aliases.join(","));
            Ok(0)
        }
        ImageOp::ImportOci {
            spec,
            alias,
            replace,
        } => {
            if let Some(a) = &alias {
                images.check_alias(a, replace).map_err(fail)?;
            }
            let image = berth_image::oci::import(&images, &spec, alias.as_deref()).map_err(fail)?;
            println!("{} {}", image.id, image.aliases.join(","));
            Ok(0)
        }
        ImageOp::Export { name, file } => {
            let image = images
                .resolve(&name)
                .map_err(fail)?
                .ok_or_else(|| fail(berth_image::Error::Unknown(name.clone())))?;
            berth_image::tarball::export(&image, &file).map_err(fail)?;
            Ok(0)
        }
        ImageOp::Delete { name, force } => {
            let users = berth_manager::images::delete(&store, &name, force).map_err(fail)?;
            if !users.is_empty() {
                eprintln!(
                    "berth: image {name:?} is unnamed now; its files stay until {} {} deleted",
                    users.join(", "),
                    if users.len() == 1 { "is" } else { "are" }
                );
            }
            Ok(0)
        }
    }
}

fn list(images: &Images, format: Format) -> Result<u8, Failure> {
    let all = images.list().map_err(fail)?;
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.id,
                        "aliases": i.aliases,
                        "source": i.metadata.source,
                        "description": i.metadata.description,
                        "os": i.metadata.os,
                        "release": i.metadata.release,
                        "architecture": i.metadata.architecture,
                        "created_at": i.metadata.created_at,
                        "size_bytes": i.metadata.size_bytes,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows).map_err(fail)?);
        }
        Format::Table => {
            println!(
                "{:<24} {:<16} {:<10} {:>10}  DESCRIPTION",
                "NAME", "ID", "SOURCE", "SIZE"
            );
            for i in &all {
                let name = if i.aliases.is_empty() {
                    "(unnamed)".to_string()
                } else {
                    i.aliases.join(",")
                };
                println!(
                    "{:<24} {:<16} {:<10} {:>10}  {}",
                    name,
                    i.id,
                    i.metadata.source,
                    human(i.metadata.size_bytes),
                    i.metadata.description
                );
            }
        }
    }
    Ok(0)
}

fn human(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1}GiB", mib / 1024.0)
    } else {
        format!("{mib:.1}MiB")
    }
}
