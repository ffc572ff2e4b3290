//! Command-line arguments. Clap types stay here and in `commands/`; they are converted
//! to core types in `context.rs` and never enter `strata-core`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// strata: version, apply, verify and roll back database schema migrations.
#[derive(Parser, Debug)]
#[command(name = "strata", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, before or after the command name.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Database URL (postgres://…, sqlite://…) [env: DATABASE_URL, or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD; default: sqlite://strata.db]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Migrations directory [default: ./migrations]
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// Config file [default: ./strata.toml when present]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Environment name: selects [environments.NAME] and .env.NAME (STRATA_ENV, else ENV)
    #[arg(long, global = true)]
    pub env: Option<String>,
    /// Machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Log level (MIGRATION_LOG_LEVEL, RUST_LOG)
    #[arg(long, global = true, env = "MIGRATION_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Answer yes to confirmations (protected environments)
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Multi-database projects: only these [databases.NAME] (comma-separated)
    #[arg(long, global = true, value_delimiter = ',')]
    pub databases: Vec<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Every migration with its state: applied, pending, modified, missing, failed
    Status(StatusArgs),
    /// Apply pending migrations in plan order
    #[command(alias = "migrate")]
    Up(UpArgs),
    /// Roll back one applied migration
    Down(DownArgs),
    /// Roll back everything applied after a target (default -1: the last one)
    Rollback(RollbackArgs),
    /// Applied, rolled-back and failed events, newest first
    History(HistoryArgs),
    /// Migrations on disk with version, name, dependencies and rollback
    List,
    /// Tool version, database, config sources, settings, counts
    Info,
    /// Check sources and history without changing anything
    Validate,
    /// Write the next migration file with a header and a down section
    #[command(alias = "new")]
    Create(CreateArgs),
    /// Record one migration as applied without running it
    Stamp(MarkArgs),
    /// Record a migration and every one before it as applied without running them
    Baseline(MarkArgs),
    /// Rewrite strata.sum after a deliberate change
    Sum,
    /// Re-record checksums of edited migrations and clear failed rows
    Repair(RepairArgs),
    /// Reachability, history, pending, drift, failed rows, lock holder (exit 0/1/2)
    Health,
    /// Database backups: create, list, restore
    #[command(subcommand)]
    Backup(BackupCommand),
    /// REST API and web console
    Serve(ServeArgs),
    /// Flag operations that lock, rewrite or break running code (exit 1 on errors)
    Lint(LintArgs),
    /// On a scratch database: apply all, roll back one by one, re-apply; report any
    /// rollback that is missing, fails or leaves something behind
    Verify(VerifyArgs),
    /// Write the migration that turns the schema the migrations build into a declared one
    Diff(DiffArgs),
    /// The dependency graph, as Mermaid or Graphviz DOT
    Graph(GraphArgs),
    /// Write a migration for a common change, in the safe form for the database
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Replace the migrations up to V by one baseline for new databases
    Squash(SquashArgs),
    /// Take over a database another tool migrated (diesel, sqlx, golang-migrate, Flyway,
    /// dbmate, goose, refinery, Prisma): record what it applied, without running it
    Adopt(AdoptArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug, Clone)]
pub struct AdoptArgs {
    /// Whose history to adopt when the database has several tools' tables
    #[arg(long, value_name = "TOOL")]
    pub from: Option<String>,
    /// Show what would be recorded; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SquashArgs {
    /// The last migration the baseline replaces
    #[arg(long)]
    pub to: String,
    /// Print the baseline; change no file
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum GenerateCommand {
    /// ALTER TABLE ... ADD COLUMN (NOT NULL needs --default)
    AddColumn {
        table: String,
        column: String,
        #[arg(value_name = "TYPE")]
        data_type: String,
        #[arg(long)]
        not_null: bool,
        /// A constant SQL expression
        #[arg(long)]
        default: Option<String>,
    },
    /// CREATE INDEX (CONCURRENTLY on PostgreSQL)
    AddIndex {
        table: String,
        #[arg(required = true)]
        columns: Vec<String>,
        #[arg(long)]
        unique: bool,
        /// The index name [default: TABLE_COLUMNS_idx, or _key when unique]
        #[arg(long)]
        name: Option<String>,
    },
    /// A foreign key (NOT VALID, then VALIDATE, on PostgreSQL)
    AddForeignKey {
        table: String,
        column: String,
        references: String,
        #[arg(long, default_value = "id")]
        ref_column: String,
        /// cascade, set-null, set-default, restrict or no-action
        #[arg(long)]
        on_delete: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// CREATE TABLE with an id primary key and the given NAME:TYPE columns (NAME:TYPE! for NOT NULL)
    CreateTable {
        table: String,
        columns: Vec<String>,
        /// created_at and updated_at
        #[arg(long)]
        timestamps: bool,
        /// deleted_at, and an index of the live rows
        #[arg(long)]
        soft_delete: bool,
    },
    /// ALTER TABLE ... RENAME COLUMN
    RenameColumn {
        table: String,
        from: String,
        to: String,
    },
    /// A check constraint (NOT VALID, then VALIDATE, on PostgreSQL)
    AddCheckConstraint {
        table: String,
        name: String,
        expression: String,
    },
    /// An UPDATE in batches (PostgreSQL commits each batch)
    DataMigration {
        table: String,
        /// `column = expression, ...`
        #[arg(long)]
        set: String,
        /// Matches only the rows still to change (so the batches end), e.g. `slug IS NULL`
        #[arg(long = "where")]
        filter: String,
        /// The inverse SET for the down section, when there is one
        #[arg(long)]
        revert: Option<String>,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// The column batches are picked by
        #[arg(long, default_value = "id")]
        key: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct GraphArgs {
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    /// The declared schema: a SQL file of CREATE statements
    #[arg(long)]
    pub schema: PathBuf,
    /// Print the migration instead of writing it
    #[arg(long)]
    pub dry_run: bool,
    /// The new migration's name
    #[arg(long, default_value = "schema_diff")]
    pub name: String,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The round trip (the only check so far; required so the command says what it does)
    #[arg(long, required = true)]
    pub roundtrip: bool,
}

#[derive(Args, Debug, Clone)]
pub struct LintArgs {
    /// Migration files or directories [default: the migrations directory]
    pub paths: Vec<PathBuf>,
    /// Whose rules: postgres, mysql or sqlite [default: the database URL's engine]
    #[arg(long)]
    pub dialect: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; without API tokens only loopback is allowed [default: [server] bind, else 127.0.0.1:8080]
    #[arg(long)]
    pub bind: Option<String>,
    /// PEM certificate chain: serve HTTPS (with --tls-key)
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RepairArgs {
    /// Show what would be repaired; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BackupCommand {
    /// Back the database up now (into BACKUP_LOCATION, default ./backups)
    Create,
    /// Backups of this database, newest first
    List,
    /// Replace the database's contents with a backup
    Restore {
        /// The backup's id, from `strata backup list`
        id: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Version, migration id, head, or +N
    #[arg(long, default_value = "head", allow_hyphen_values = true)]
    pub target: String,
    /// Print the plan and its SQL; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Apply pending migrations older than applied ones (after a merge)
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// In a protected environment, run even with error-level lint findings
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Continue a failed non-transactional migration from its first incomplete statement;
    /// with --fleet, run only the targets not yet done
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub in_doubt: InDoubtArg,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Fleets: migrate this many targets first and stop if any fails
    #[arg(long)]
    pub canary: Option<usize>,
}

/// Fleet flags shared by `up` and `status`.
#[derive(Args, Debug, Clone)]
pub struct FleetArgs {
    /// Run on every database in FILE (one URL a line, or TOML `targets = [...]`);
    /// without FILE, the [fleet] of strata.toml
    // Parsed as an OS string: clap's path parser refuses the empty "no FILE" value.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "",
          value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from))]
    pub fleet: Option<PathBuf>,
    /// Fleets: targets migrated at once [default: 4]
    #[arg(long)]
    pub concurrency: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Args, Debug, Clone)]
pub struct DownArgs {
    /// The version (or migration id) to roll back
    #[arg(value_name = "VERSION")]
    pub target_version: String,
    /// Roll back applied migrations that depend on it first
    #[arg(long)]
    pub cascade: bool,
    /// Print the rollback plan and its SQL; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Continue a rollback that stopped midway from its first incomplete statement
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub in_doubt: InDoubtArg,
}

/// `--in-doubt=done|rerun`: what the statement a crash left in doubt did.
#[derive(Args, Debug, Clone)]
pub struct InDoubtArg {
    /// With --resume: the statement a crash left in doubt took effect (done) or did not
    /// (rerun); check the database first
    #[arg(long = "in-doubt", value_name = "done|rerun", requires = "resume")]
    pub in_doubt: Option<InDoubtChoice>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum InDoubtChoice {
    Done,
    Rerun,
}

impl InDoubtArg {
    pub fn get(&self) -> Option<strata_core::InDoubt> {
        self.in_doubt.map(|c| match c {
            InDoubtChoice::Done => strata_core::InDoubt::Done,
            InDoubtChoice::Rerun => strata_core::InDoubt::Rerun,
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct RollbackArgs {
    /// Keep everything up to this target: a version, base (all), or -N [default: -1]
    #[arg(allow_hyphen_values = true)]
    pub target: Option<String>,
    /// Same as the positional target
    #[arg(long = "to", allow_hyphen_values = true, conflicts_with = "target")]
    pub to: Option<String>,
    /// Print the rollback plan and its SQL; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Continue a rollback that stopped midway from its first incomplete statement
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub in_doubt: InDoubtArg,
}

#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// How many events
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// The migration's name, e.g. "Add user settings"
    pub name: String,
    /// A description for the header
    pub description: Option<String>,
    /// Write the file without a down section
    #[arg(long)]
    pub no_down: bool,
    /// Scaffold a Rust code migration (`NNN_name.rs`, a `strata::CodeMigration`) instead
    /// of a SQL file; the application registers it with `Migrator::register`
    #[arg(long)]
    pub code: bool,
    /// Fill the file from a `generate` template and its arguments (last on the line):
    /// `create "Unique emails" --template add-index users email --unique`
    #[arg(long, value_name = "TEMPLATE ARGS", num_args = 1.., allow_hyphen_values = true, conflicts_with = "code")]
    pub template: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct MarkArgs {
    /// The version (or migration id)
    #[arg(value_name = "VERSION")]
    pub target_version: String,
}
