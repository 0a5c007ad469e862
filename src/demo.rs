//! `hookgate demo`: the real gateway in front of a built-in echo app, fed genuine and forged webhooks.

use std::process::ExitCode;

pub async fn run(_once: bool) -> ExitCode {
    ExitCode::SUCCESS
}
