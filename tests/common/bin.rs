//! The `gcm-ccs` binary under test.

use std::process::{Command, Output};

/// `gcm-ccs` with no key or log filter inherited from the environment.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gcm-ccs"));
    cmd.env_remove("GCM_API_KEY").env_remove("GCM_CCS_LOG");
    cmd
}

/// Runs a command to completion off the async runtime, so the in-process emulator keeps going.
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
