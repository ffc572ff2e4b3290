//! The rules of a protected environment (`protected = true`, or `env` prod/production):
//! a change needs the caller's confirmation, and a plan with error-level lint findings
//! is refused unless the caller overrides. One implementation, so the CLI, the HTTP
//! API and an embedding application refuse the same things; each only decides how it
//! asks (a prompt or `--yes`, a field in the request).

use crate::config::Config;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::event::Silent;
use crate::lint::{self, Engine, LintFinding, Severity};
use crate::migrator::{Migrator, RunOptions};
use crate::plan::{Plan, Target, UpOptions};

/// What the caller has said about a change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consent {
    /// The operator confirmed this change (a prompt answered, `--yes`, `"confirm": true`).
    pub confirmed: bool,
    /// Run even with error-level lint findings (`--allow-unsafe`).
    pub allow_unsafe: bool,
}

fn env_name(config: &Config) -> &str {
    config.env.as_deref().unwrap_or("this environment")
}

/// Refuses `action` in a protected environment unless the caller confirmed it.
pub fn confirm(config: &Config, action: &str, consent: &Consent) -> Result<()> {
    if !config.protected || consent.confirmed {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "{} is protected: `{action}` needs confirmation",
        env_name(config)
    )))
}

/// The lint findings of the migrations `plan` runs; empty where lint has no rules
/// (document stores).
pub fn plan_findings(config: &Config, migrator: &Migrator, plan: &Plan) -> Vec<LintFinding> {
    let Some(engine) = Engine::of_url(&config.database_url) else {
        return Vec::new();
    };
    let planned = plan
        .steps
        .iter()
        .filter_map(|s| s.migration.map(|i| &migrator.migrations()[i]));
    lint::lint(planned, engine)
}

/// The findings on what `up` to `target` would apply now, for the gate before a run.
/// Planned without the lock: a `success=false` row may be a live run's migration in
/// progress, not a failure, so it is planned as a resume here; the real run re-plans
/// under the lock and refuses a real failure there.
pub async fn planned_findings(
    config: &Config,
    migrator: &Migrator,
    d: &mut dyn Driver,
    target: &Target,
    opts: &RunOptions,
) -> Result<Vec<LintFinding>> {
    let dry = RunOptions {
        dry_run: true,
        up: UpOptions {
            resume: true,
            ..opts.up
        },
        ..opts.clone()
    };
    let plan = migrator.up(d, target, &dry, &mut Silent).await?.plan;
    Ok(plan_findings(config, migrator, &plan))
}

/// Refuses, in a protected environment, a plan with error-level findings unless the
/// caller allowed unsafe changes.
pub fn lint_gate(config: &Config, findings: &[LintFinding], consent: &Consent) -> Result<()> {
    if !config.protected || consent.allow_unsafe {
        return Ok(());
    }
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "{} is protected and the plan has {} error-level lint finding(s) ({}); fix them or allow unsafe changes",
        env_name(config),
        errors.len(),
        errors
            .iter()
            .map(|f| format!("{}:{} {}", f.migration, f.line, f.rule))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
