//! `berth snapshot`, `restore`, `copy`, `publish`: a container's files as a whole.

use super::system::{Format, fail};
use crate::Failure;
use anyhow::anyhow;
use berth_manager::Manager;
use clap::Args;
use std::path::Path;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// `NAME [SNAP]` (take one), `list NAME`, or `delete NAME SNAP`.
    #[arg(num_args = 1..=3, value_name = "NAME [SNAP] | list NAME | delete NAME SNAP")]
    words: Vec<String>,
    /// For `list`: table or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    name: String,
    snapshot: String,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    source: String,
    destination: String,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    name: String,
    /// The image's name.
    #[arg(long)]
    alias: String,
    /// From this snapshot rather than from the container's files now.
    #[arg(long)]
    snapshot: Option<String>,
    /// Move the name from the image that has it (kept, unnamed).
    #[arg(long)]
    replace: bool,
}

fn manager(root: &Path) -> Result<Manager, Failure> {
    Manager::open(root).map_err(fail)
}

pub fn snapshot(root: &Path, a: SnapshotArgs) -> Result<u8, Failure> {
    let m = manager(root)?;
    match a
        .words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list", name] => {
            let snaps = m.snapshots(name).map_err(fail)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&snaps).map_err(fail)?),
                Format::Table => {
                    println!("{:<24} CREATED (epoch seconds)", "SNAPSHOT");
                    for s in snaps {
                        println!("{:<24} {}", s.name, s.created_at);
                    }
                }
            }
        }
        ["delete", name, snap] => m.delete_snapshot(name, snap).map_err(fail)?,
        [name] => println!("{}", m.snapshot(name, None).map_err(fail)?),
        [name, snap] => println!("{}", m.snapshot(name, Some(snap)).map_err(fail)?),
        _ => {
            return Err(fail(anyhow!(
                "use `berth snapshot NAME [SNAP]`, `berth snapshot list NAME` or `berth snapshot delete NAME SNAP`"
            )));
        }
    }
    Ok(0)
}

pub fn restore(root: &Path, a: RestoreArgs) -> Result<u8, Failure> {
    manager(root)?.restore(&a.name, &a.snapshot).map_err(fail)?;
    Ok(0)
}

pub fn copy(root: &Path, a: CopyArgs) -> Result<u8, Failure> {
    manager(root)?
        .copy(&a.source, &a.destination)
        .map_err(fail)?;
    Ok(0)
}

pub fn publish(root: &Path, a: PublishArgs) -> Result<u8, Failure> {
    let image = manager(root)?
        .publish(&a.name, a.snapshot.as_deref(), &a.alias, a.replace)
        .map_err(fail)?;
    println!("{} {}", image.id, image.aliases.join(","));
    Ok(0)
}
