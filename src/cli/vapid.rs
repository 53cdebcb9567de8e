//! `gcm-ccs vapid`: VAPID key pairs for Web Push.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use gcm_ccs::webpush::VapidKey;

use super::common::{Failure, read_file};
use super::exit;

/// Make VAPID keys for Web Push, or show the public key of one.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct VapidArgs {
    #[command(subcommand)]
    command: VapidCommand,
}

#[derive(Debug, Subcommand)]
enum VapidCommand {
    /// Write a new private key (PKCS#8 PEM, readable by its owner only) to FILE and print
    /// its public key.
    Generate {
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of a private key file (PKCS#8 or SEC1 PEM, or raw base64url).
    PublicKey {
        /// The private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

const AFTER_HELP: &str = "\
The public key (base64url) goes to stdout: it is the applicationServerKey your web app passes
to pushManager.subscribe(). Keep the private key file secret; `gcm-ccs webpush --vapid-key
FILE` signs with it.

Examples:
  gcm-ccs vapid generate --out vapid.pem
  gcm-ccs vapid public-key --key vapid.pem";

pub fn run(args: VapidArgs) -> Result<u8, Failure> {
    match args.command {
        VapidCommand::Generate { out, force } => {
            let key = VapidKey::generate();
            write_secret(&out, key.to_pkcs8_pem().as_bytes(), force)?;
            println!("{}", key.public_key());
            eprintln!("private key written to {}", out.display());
        }
        VapidCommand::PublicKey { key } => println!("{}", load_key(&key, "--key")?.public_key()),
    }
    Ok(exit::OK)
}

/// The VAPID key in the file named by `option`.
pub fn load_key(path: &Path, option: &str) -> Result<VapidKey, Failure> {
    let text = String::from_utf8(read_file(path, option)?)
        .map_err(|_| Failure::usage(format!("{option} {}: not text", path.display())))?;
    VapidKey::parse(&text).map_err(|e| Failure::usage(format!("{option} {}: {e}", path.display())))
}

/// Writes `bytes` to a new file only its owner can read (an existing one only with `force`).
fn write_secret(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let fail = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            " (it exists: pass --force to replace it)"
        } else {
            ""
        };
        Failure::usage(format!("cannot write {}: {e}{hint}", path.display()))
    };
    options
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(fail)
}
