//! Rendering: text with colour on a terminal, JSON with `--json`, errors with the
//! file, line and a caret under the source. Logs go to stderr.

use std::io::IsTerminal;
use std::path::Path;

use strata_core::{Direction, Error, Event, Plan, Reporter, RunReport};
use tracing_subscriber::EnvFilter;

use crate::args::{GlobalArgs, LogFormat};

pub fn init_logging(g: &GlobalArgs) {
    let level = g
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok());
    // One event per migration (target `strata::migration`, at info) is a JSON log's
    // main content; in text the progress lines already say it, so it shows there
    // when a level is asked for.
    let per_migration = match g.log_format {
        LogFormat::Json => "info",
        LogFormat::Text => "warn",
    };
    let filter = match level {
        Some(l) if !l.contains('=') => EnvFilter::new(format!(
            "warn,strata_core={l},strata_drivers={l},strata_cli={l},strata::migration={l}"
        )),
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::new(format!(
            "warn,strata_core=info,strata_drivers=info,strata_cli=info,strata::migration={per_migration}"
        )),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_enabled(Stream::Stderr))
        .with_target(false);
    match g.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().init(),
    }
}

/// Colour only for a terminal, and never with `NO_COLOR`. Asked once per stream: a
/// terminal check is a system call, and `status` paints every row.
fn color_enabled(stream: Stream) -> bool {
    static STDOUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static STDERR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let no_color = || std::env::var_os("NO_COLOR").is_some();
    match stream {
        Stream::Stdout => *STDOUT.get_or_init(|| std::io::stdout().is_terminal() && !no_color()),
        Stream::Stderr => *STDERR.get_or_init(|| std::io::stderr().is_terminal() && !no_color()),
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

fn painted(text: &str, code: &str, stream: Stream) -> String {
    if color_enabled(stream) {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Wraps text for stdout in an ANSI colour when stdout is a terminal.
pub fn paint(text: &str, code: &str) -> String {
    painted(text, code, Stream::Stdout)
}

/// The same for stderr, judged by stderr: `2>log` gets no escape codes.
pub fn paint_err(text: &str, code: &str) -> String {
    painted(text, code, Stream::Stderr)
}

pub const GREEN: &str = "32";
pub const RED: &str = "31";
pub const YELLOW: &str = "33";
pub const DIM: &str = "2";
pub const BOLD: &str = "1";

pub fn print_json(v: &serde_json::Value) {
    use std::io::Write;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

/// Prints an error once: JSON on stdout with `--json`, else text on stderr with the
/// source line and a caret when the error points into a file.
pub fn print_error(e: &Error, json_mode: bool) {
    if json_mode {
        print_json(&with_hint(e.to_json(), e));
        return;
    }
    let (file, line) = e
        .location()
        .map(|(p, l)| (Some(p), l))
        .unwrap_or((None, None));
    let message = e.to_string();
    eprintln!("{} {message}", paint_err("error:", RED));
    if let (Some(path), Some(line)) = (&file, line) {
        let column = match e {
            Error::Source(s) | Error::SumMismatch(s) => s.column,
            _ => None,
        };
        eprint!("{}", snippet(path, line, column));
    } else if let Some(path) = &file {
        eprintln!("  --> {}", path.display());
    }
    if let Error::Source(s) | Error::SumMismatch(s) = e {
        if let Some(h) = &s.help {
            eprintln!("{} {h}", paint_err("help:", YELLOW));
        }
    }
    if let Some(h) = e.hint() {
        eprintln!("{} {h}", paint_err("help:", YELLOW));
    }
}

/// The command's way out (`--cascade`, `strata repair`, ...) beside the library's
/// description of the state: `{"error": {..., "hint"}}`.
pub fn with_hint(mut v: serde_json::Value, e: &Error) -> serde_json::Value {
    if let Some(h) = e.hint() {
        v["error"]["hint"] = serde_json::json!(h);
    }
    v
}

/// `  --> file:line:col`, the source line and a caret.
fn snippet(path: &Path, line: usize, column: Option<usize>) -> String {
    let mut out = format!(
        "  --> {}:{line}{}\n",
        path.display(),
        column.map(|c| format!(":{c}")).unwrap_or_default()
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let Some(src) = text.lines().nth(line.saturating_sub(1)) else {
        return out;
    };
    let gutter = " ".repeat(line.to_string().len());
    let col = column
        .unwrap_or_else(|| src.len() - src.trim_start().len() + 1)
        .max(1);
    out.push_str(&format!(
        "{gutter} |\n{line} | {src}\n{gutter} | {}^\n",
        " ".repeat(col - 1)
    ));
    out
}

/// Prints progress as text; silent in JSON mode (the result is printed at the end). In
/// a terminal, a run of several migrations also shows a progress bar (indicatif) under
/// the lines of the steps done; piped, it prints the lines only.
pub struct TextReporter {
    json: bool,
    terminal: bool,
    bar: Option<indicatif::ProgressBar>,
    /// With a bar: the running step's line, printed above the bar when it ends.
    running: String,
    /// What this run did, in the words `status` uses, for a failure's JSON answer.
    done: Vec<serde_json::Value>,
    failed: Option<serde_json::Value>,
}

impl TextReporter {
    pub fn new(json: bool) -> TextReporter {
        use std::io::IsTerminal;
        TextReporter {
            json,
            terminal: std::io::stdout().is_terminal(),
            bar: None,
            running: String::new(),
            done: Vec::new(),
            failed: None,
        }
    }

    /// Under `--json`, a run that failed partway answers with what it did as well as
    /// the error: `{"error": {...}, KEY: [steps done], "failed": {step}}`, as the
    /// REST API does. Returns the exit code; `None` without `--json` (the progress
    /// lines already said it).
    pub fn answer_failure(&self, e: &Error, key: &str) -> Option<i32> {
        if !self.json {
            return None;
        }
        let mut v = with_hint(e.to_json(), e);
        v[key] = serde_json::json!(self.done);
        if let Some(f) = &self.failed {
            v["failed"] = f.clone();
        }
        print_json(&v);
        Some(e.exit_code())
    }

    fn collect(&mut self, event: &Event<'_>) {
        let direction = |d: Direction| if d == Direction::Up { "up" } else { "down" };
        match event {
            Event::StepFinished { step, elapsed } => self.done.push(serde_json::json!({
                "version": step.version, "name": step.name,
                "execution_time_ms": elapsed.as_millis() as u64,
            })),
            Event::StepRecorded { step } => self.done.push(serde_json::json!({
                "version": step.version, "name": step.name, "execution_time_ms": 0,
            })),
            Event::StepFailed { step, error } => {
                let mut f = serde_json::json!({
                    "version": step.version, "name": step.name,
                    "direction": direction(step.direction), "message": error.to_string(),
                });
                if let Some(s) = &error.statement {
                    f["file"] = serde_json::json!(s.path.display().to_string());
                    f["line"] = serde_json::json!(s.line);
                    f["statement"] = serde_json::json!(s.index);
                }
                self.failed = Some(f);
            }
            _ => {}
        }
    }

    /// The bar for a run of `total` steps, made at its first step.
    fn bar(&mut self, total: usize) -> Option<&indicatif::ProgressBar> {
        if !self.terminal || total < 2 {
            return None;
        }
        Some(self.bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {elapsed} {wide_msg}",
                )
                .expect("a valid template"),
            );
            bar
        }))
    }
}

impl Reporter for TextReporter {
    fn report(&mut self, event: Event<'_>) {
        self.collect(&event);
        if self.json {
            return;
        }
        if let Some(bar) = self.bar.as_ref() {
            // The bar keeps the last line of the terminal; step lines print above it.
            match &event {
                Event::StepFinished { elapsed, .. } => {
                    bar.println(format!(
                        "{} {} {}",
                        self.running,
                        paint("ok", GREEN),
                        paint(&format!("({} ms)", elapsed.as_millis()), DIM)
                    ));
                    bar.inc(1);
                    if bar.position() >= bar.length().unwrap_or(0) {
                        bar.finish_and_clear();
                        self.bar = None;
                    }
                    return;
                }
                Event::StepFailed { .. } => {
                    bar.println(format!("{} {}", self.running, paint("FAILED", RED)));
                    bar.abandon();
                    self.bar = None;
                    return;
                }
                _ => {}
            }
        }
        if let Event::StepStarted { step, index, total } = &event {
            let verb = if step.direction == Direction::Up {
                "Applying"
            } else {
                "Rolling back"
            };
            let line = format!("[{}/{total}] {verb} {} …", index + 1, step.id);
            let (index, id) = (*index as u64, step.id.clone());
            if let Some(bar) = self.bar(*total) {
                bar.set_position(index);
                bar.set_message(id);
                self.running = line;
                return;
            }
        }
        match event {
            Event::PlanReady {
                plan,
                dry_run: true,
            } => print_plan(plan),
            Event::PlanReady {
                plan,
                dry_run: false,
            } if plan.is_empty() => println!("Nothing to do: the database is up to date."),
            Event::StepStarted { step, index, total } => {
                let verb = if step.direction == Direction::Up {
                    "Applying"
                } else {
                    "Rolling back"
                };
                let resume = if step.resume_from > 0 {
                    format!(" (resuming at statement {})", step.resume_from + 1)
                } else {
                    String::new()
                };
                print!("[{}/{total}] {verb} {}{resume} … ", index + 1, step.id);
                let _ = std::io::Write::flush(&mut std::io::stdout());
            }
            Event::StepFinished { elapsed, .. } => println!(
                "{} {}",
                paint("ok", GREEN),
                paint(&format!("({} ms)", elapsed.as_millis()), DIM)
            ),
            Event::StepFailed { .. } => println!("{}", paint("FAILED", RED)),
            Event::Database { name, url } => {
                println!("{}", paint(&format!("== {name} ({url}) =="), BOLD))
            }
            Event::StepRecorded { step } => println!("Recorded {} as applied (not run)", step.id),
            Event::BackupCreated { info } => println!(
                "Backup {} written ({} bytes) {}",
                info.id,
                info.size_bytes,
                paint(&format!("[{}]", info.reason), DIM)
            ),
            Event::Repaired { version, action } => println!(
                "Repaired {version}: {}",
                if action == "checksum" {
                    "re-recorded its checksum"
                } else {
                    "cleared the failed row; it is pending again"
                }
            ),
            // Retries are logged (stderr) by the library as they happen.
            _ => {}
        }
    }
}

fn print_plan(plan: &Plan) {
    if plan.is_empty() {
        println!("Dry run: nothing to do.");
        return;
    }
    let verb = if plan.direction == Direction::Up {
        "apply"
    } else {
        "roll back"
    };
    println!(
        "{}",
        paint(
            &format!(
                "Dry run: would {verb} {} migration(s); nothing was changed.",
                plan.steps.len()
            ),
            BOLD
        )
    );
    for step in &plan.steps {
        let tx = match (&step.transactional, &step.outside_transaction) {
            (true, _) => String::new(),
            (false, Some(why)) => format!(" (no transaction: {why} cannot run in one)"),
            (false, None) => " (no transaction)".to_string(),
        };
        println!(
            "\n{}",
            paint(
                &format!(
                    "-- {} {}{tx}",
                    if step.direction == Direction::Up {
                        "apply"
                    } else {
                        "rollback"
                    },
                    step.id
                ),
                BOLD
            )
        );
        match step.script.text() {
            Ok(sql) => println!("{}", sql.trim_end()),
            Err(e) => println!("-- {e}"),
        }
    }
}

/// Prints a run's result: JSON, or a closing line of text.
pub fn print_run(report: &RunReport, key: &str, json_mode: bool) {
    if json_mode {
        print_json(&report.to_json(key));
    } else if !report.dry_run && !report.done.is_empty() {
        let total: u64 = report.done.iter().map(|s| s.execution_time_ms).sum();
        let verb = if key == "applied" {
            "Applied"
        } else {
            "Rolled back"
        };
        println!("{verb} {} migration(s) in {total} ms.", report.done.len());
    }
}
