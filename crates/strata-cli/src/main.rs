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
    let cli = args::Cli::parse();
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
