//! Runs the `ratekeeper` binary and reads what it printed.

#![allow(dead_code)]

use std::process::Command;

/// How one run of the binary ended.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the binary with `args` and waits for it.
pub(crate) fn ratekeeper(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ratekeeper"))
        .args(args)
        .output()
        .expect("run the binary");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Each line of `text` read as one JSON value.
pub(crate) fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}
