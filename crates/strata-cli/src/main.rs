//! The `strata` binary: parse, run, print the error once, exit with SPEC's code.

mod args;
mod commands;
mod context;
mod output;

use clap::Parser;

fn main() {
    // `strata status | head` ends quietly, as other command-line tools do, instead of
    // panicking on the closed pipe.
    sigpipe::reset();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    output::init_logging(&cli.global);
    let json = cli.global.json;
    // One thread starts fastest; the server needs several so a run on a blocking
    // driver (SQLite) never stalls status and health requests.
    let mut builder = if matches!(cli.command, args::Command::Serve(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e, json);
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// clap's answer to bad arguments. With `--json` anywhere on the line, a machine is
/// reading: the usage error is SPEC's JSON error on stdout (exit 2). Help and version
/// print as usual.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let wants_json = std::env::args_os().any(|a| a == "--json");
    let is_help = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !wants_json || is_help {
        e.exit()
    }
    let message = e.render().to_string();
    let first = message
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string();
    output::print_json(&serde_json::json!({
        "error": { "kind": "usage", "message": first, "file": null, "line": null, "usage": message.trim() }
    }));
    std::process::exit(2)
}
