//! The `baton` command-line tool: a thin shell over the `baton` library. Parsing is in
//! [`args`], the tree subcommands in [`commands`] (`export` and `import` in [`transfer`]),
//! the shell verbs over the recipes in
//! [`verbs`], the process wrappers in [`wrappers`] (`lock`, `elect`) and [`registrar`]
//! (`register`), which run their command under [`supervise`] in a process group of its own
//! ([`group`]); signal handling in [`signals`], output formats in [`output`], exit statuses
//! in [`exit`]. The tracing subscriber is set up here only.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod access;
mod admin;
mod args;
mod commands;
mod exit;
mod group;
mod output;
mod registrar;
mod signals;
mod supervise;
mod transfer;
mod verbs;
mod wrappers;

use clap::{CommandFactory as _, Parser as _};
use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    if matches!(cli.command, args::Command::Guard) {
        return ExitCode::from(group::run_guard());
    }
    if let Err(message) = cli.validate() {
        args::Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message).exit();
    }
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("baton: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) if exit::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton: {e:#}");
            ExitCode::from(exit::exit_status(&e))
        }
    }
}

/// Logs to stderr, warnings and errors only unless `BATON_LOG` says otherwise.
fn init_tracing() {
    // A target filter (`debug`, `warn,baton=debug`), not `EnvFilter`: no regex engine needed.
    let parse = |text: &str| text.parse::<tracing_subscriber::filter::Targets>().ok();
    let filter = std::env::var("BATON_LOG").ok().and_then(|v| parse(&v)).or_else(|| parse("warn")).unwrap_or_default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .finish()
        .with(filter)
        .init();
}
