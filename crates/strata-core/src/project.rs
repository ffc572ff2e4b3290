//! A multi-database project (`[databases.NAME]`): each database with its own migrations
//! and history, and migrations that depend on another database's (`Depends: docs:1.1.0`).
//!
//! The plan across databases is made in rounds: each database applies (or rolls back)
//! as far as it can without passing a migration whose cross-database dependency is not
//! met yet (or, rolling back, one another database still depends on), then the next
//! database goes. Rounds repeat until nothing moves. Each database keeps its own lock,
//! history and transactions: a failure stops the run with everything before it
//! committed, exactly as on one database.

use crate::driver::Driver;
use crate::error::{Error, Result, SourceError};
use crate::event::{Event, Reporter};
use crate::migrator::{Migrator, RunOptions, RunReport, StatusReport};
use crate::plan::Target;
use crate::version::Version;

/// One database of the project.
pub struct Member {
    pub name: String,
    /// The URL safe to print.
    pub url: String,
    pub migrator: Migrator,
    /// Connected for selected databases and for those they depend on.
    pub driver: Option<Box<dyn Driver>>,
    /// Chosen by `--databases` (or all); the others are only read.
    pub selected: bool,
}

/// What one database did in a project run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberReport {
    pub database: String,
    pub report: RunReport,
}

pub struct Project {
    pub members: Vec<Member>,
}

impl Project {
    /// Checks every cross-database dependency names a database of the project and a
    /// migration it has.
    pub fn new(members: Vec<Member>) -> Result<Self> {
        for m in &members {
            for mig in m.migrator.migrations() {
                for d in &mig.dependencies {
                    let Some((db, version)) = d.external() else {
                        continue;
                    };
                    let Some(other) = members.iter().find(|o| o.name == db) else {
                        return Err(SourceError::new(
                            &d.path,
                            Some(d.line),
                            format!(
                                "{} depends on `{}`, but the project has no database `{db}`",
                                mig.id, d.target
                            ),
                        )
                        .with_help(format!(
                            "databases: {}",
                            members
                                .iter()
                                .map(|o| o.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .into());
                    };
                    if !other
                        .migrator
                        .migrations()
                        .iter()
                        .any(|o| o.version == Version::new(version))
                    {
                        return Err(SourceError::new(
                            &d.path,
                            Some(d.line),
                            format!("{} depends on `{}`, but database `{db}` has no migration {version}", mig.id, d.target),
                        )
                        .into());
                    }
                }
            }
        }
        Ok(Project { members })
    }

    fn driver(&mut self, i: usize) -> &mut dyn Driver {
        self.members[i]
            .driver
            .as_deref_mut()
            .expect("selected and depended-on databases are connected")
    }

    /// Whether `version` is applied (successfully) in database `db`.
    async fn applied_in(&mut self, db: &str, version: &str) -> Result<bool> {
        let Some(i) = self.members.iter().position(|m| m.name == db) else {
            return Ok(false);
        };
        let v = Version::new(version);
        let rows = self.driver(i).applied().await?;
        Ok(rows
            .iter()
            .any(|r| r.success && Version::new(r.version.as_str()) == v))
    }

    /// Status of every selected database.
    pub async fn status(&mut self) -> Result<Vec<(String, String, StatusReport)>> {
        let mut out = Vec::new();
        for i in 0..self.members.len() {
            if !self.members[i].selected {
                continue;
            }
            let m = &mut self.members[i];
            let d = m
                .driver
                .as_deref_mut()
                .expect("selected databases are connected");
            let s = m.migrator.status(d).await?;
            out.push((m.name.clone(), m.url.clone(), s));
        }
        Ok(out)
    }

    /// Applies every selected database's pending migrations (up to `target`) in
    /// cross-database order.
    pub async fn up(
        &mut self,
        target: &Target,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<Vec<MemberReport>> {
        let mut out: Vec<MemberReport> = Vec::new();
        if opts.dry_run {
            for i in self.selected() {
                rep.report(Event::Database {
                    name: &self.members[i].name,
                    url: &self.members[i].url,
                });
                let m = &mut self.members[i];
                let d = m.driver.as_deref_mut().expect("connected");
                let report = m.migrator.up(d, target, opts, rep).await?;
                out.push(MemberReport {
                    database: m.name.clone(),
                    report,
                });
            }
            return Ok(out);
        }
        loop {
            let mut moved = false;
            let mut waiting: Vec<String> = Vec::new();
            for i in self.selected() {
                let plan = {
                    let m = &mut self.members[i];
                    let d = m.driver.as_deref_mut().expect("connected");
                    let dry = RunOptions {
                        dry_run: true,
                        ..opts.clone()
                    };
                    m.migrator
                        .up(d, target, &dry, &mut crate::Silent)
                        .await?
                        .plan
                };
                let mut reachable = plan.steps.len();
                'steps: for (k, step) in plan.steps.iter().enumerate() {
                    let Some(mi) = step.migration else { continue };
                    let deps: Vec<(String, String)> = self.members[i].migrator.migrations()[mi]
                        .dependencies
                        .iter()
                        .filter_map(|d| d.external().map(|(a, b)| (a.to_string(), b.to_string())))
                        .collect();
                    for (db, v) in deps {
                        if !self.applied_in(&db, &v).await? {
                            waiting.push(format!(
                                "{}:{} waits for {db}:{v}",
                                self.members[i].name, step.version
                            ));
                            reachable = k;
                            break 'steps;
                        }
                    }
                }
                if reachable == 0 {
                    continue;
                }
                let stop = if reachable == plan.steps.len() {
                    target.clone()
                } else {
                    Target::Version(plan.steps[reachable - 1].id.clone())
                };
                rep.report(Event::Database {
                    name: &self.members[i].name,
                    url: &self.members[i].url,
                });
                let m = &mut self.members[i];
                let d = m.driver.as_deref_mut().expect("connected");
                let report = m.migrator.up(d, &stop, opts, rep).await?;
                moved |= !report.done.is_empty();
                merge(&mut out, &m.name, report);
            }
            if !moved {
                if !waiting.is_empty() {
                    return Err(Error::Refused(format!(
                        "cross-database dependencies cannot be met: {} (is the database it waits for selected with --databases, and is that migration pending behind a dependency on this one?)",
                        waiting.join("; ")
                    )));
                }
                return Ok(out);
            }
        }
    }

    /// Rolls each selected database back to `target`, never past a migration another
    /// database's applied migration depends on (that one goes first).
    pub async fn rollback(
        &mut self,
        target: &Target,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<Vec<MemberReport>> {
        let mut out: Vec<MemberReport> = Vec::new();
        let dry = RunOptions {
            dry_run: true,
            ..opts.clone()
        };
        // Relative targets (`-1`) mean "from where each database is now": fix them to
        // the version each database keeps before anything moves.
        let mut keep: Vec<(usize, Target)> = Vec::new();
        for i in self.selected().into_iter().rev() {
            let m = &mut self.members[i];
            let d = m.driver.as_deref_mut().expect("connected");
            let plan = m
                .migrator
                .rollback(d, target, &dry, &mut crate::Silent)
                .await?
                .plan;
            if opts.dry_run {
                rep.report(Event::Database {
                    name: &m.name,
                    url: &m.url,
                });
                let report = m.migrator.rollback(d, target, opts, rep).await?;
                out.push(MemberReport {
                    database: m.name.clone(),
                    report,
                });
                continue;
            }
            let Some(oldest) = plan.steps.last() else {
                continue;
            };
            let applied = d.applied().await?;
            let pos = applied.iter().position(|a| a.version == oldest.version);
            let kept = match pos {
                Some(p) if p > 0 => Target::Version(applied[p - 1].version.clone()),
                _ => Target::Base,
            };
            keep.push((i, kept));
        }
        if opts.dry_run {
            return Ok(out);
        }
        loop {
            let mut moved = false;
            let mut waiting: Vec<String> = Vec::new();
            for (i, kept) in keep.clone() {
                let plan = {
                    let m = &mut self.members[i];
                    let d = m.driver.as_deref_mut().expect("connected");
                    m.migrator
                        .rollback(d, &kept, &dry, &mut crate::Silent)
                        .await?
                        .plan
                };
                let mut reachable = plan.steps.len();
                for (k, step) in plan.steps.iter().enumerate() {
                    if let Some(who) = self.dependent_of(i, &step.version).await? {
                        waiting.push(format!(
                            "{}:{} is needed by {who}",
                            self.members[i].name, step.version
                        ));
                        reachable = k;
                        break;
                    }
                }
                if reachable == 0 {
                    continue;
                }
                let stop = if reachable == plan.steps.len() {
                    kept.clone()
                } else {
                    Target::Version(plan.steps[reachable].version.clone())
                };
                rep.report(Event::Database {
                    name: &self.members[i].name,
                    url: &self.members[i].url,
                });
                let m = &mut self.members[i];
                let d = m.driver.as_deref_mut().expect("connected");
                let report = m.migrator.rollback(d, &stop, opts, rep).await?;
                moved |= !report.done.is_empty();
                merge(&mut out, &m.name, report);
            }
            if !moved {
                if !waiting.is_empty() {
                    return Err(Error::Refused(format!(
                        "cannot roll back: {} (roll that database back too, e.g. without --databases)",
                        waiting.join("; ")
                    )));
                }
                return Ok(out);
            }
        }
    }

    /// Rolls back one migration `version` of database `db` (with its dependents in
    /// that database when `cascade`), refusing while another database's applied
    /// migration depends on any of them.
    pub async fn down(
        &mut self,
        db: &str,
        version: &str,
        cascade: bool,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<MemberReport> {
        let Some(i) = self.members.iter().position(|m| m.name == db) else {
            return Err(Error::Config(format!("the project has no database `{db}`")));
        };
        let dry = RunOptions {
            dry_run: true,
            ..opts.clone()
        };
        let plan = {
            let m = &mut self.members[i];
            let d = m.driver.as_deref_mut().expect("connected");
            m.migrator
                .down(d, version, cascade, &dry, &mut crate::Silent)
                .await?
                .plan
        };
        for step in &plan.steps {
            if let Some(who) = self.dependent_of(i, &step.version).await? {
                return Err(Error::Refused(format!(
                    "cannot roll back {db}:{}: {who} depends on it (roll that back first)",
                    step.version
                )));
            }
        }
        let m = &mut self.members[i];
        rep.report(Event::Database {
            name: &m.name,
            url: &m.url,
        });
        let d = m.driver.as_deref_mut().expect("connected");
        let report = m.migrator.down(d, version, cascade, opts, rep).await?;
        Ok(MemberReport {
            database: m.name.clone(),
            report,
        })
    }

    /// An applied migration of another database that depends on `version` of member `i`.
    async fn dependent_of(&mut self, i: usize, version: &str) -> Result<Option<String>> {
        let name = self.members[i].name.clone();
        let v = Version::new(version);
        for j in 0..self.members.len() {
            if j == i || self.members[j].driver.is_none() {
                continue;
            }
            let dependents: Vec<String> = self.members[j]
                .migrator
                .migrations()
                .iter()
                .filter(|m| {
                    m.dependencies.iter().any(|d| {
                        d.external()
                            .is_some_and(|(db, dv)| db == name && Version::new(dv) == v)
                    })
                })
                .map(|m| m.version.as_str().to_string())
                .collect();
            if dependents.is_empty() {
                continue;
            }
            let applied = self.driver(j).applied().await?;
            if let Some(a) = applied.iter().find(|a| dependents.contains(&a.version)) {
                return Ok(Some(format!("{}:{}", self.members[j].name, a.version)));
            }
        }
        Ok(None)
    }

    fn selected(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].selected)
            .collect()
    }
}

/// Appends a member's run to the reports, one entry a database.
fn merge(out: &mut Vec<MemberReport>, name: &str, report: RunReport) {
    match out.iter_mut().find(|r| r.database == name) {
        Some(r) => r.report.done.extend(report.done),
        None => out.push(MemberReport {
            database: name.to_string(),
            report,
        }),
    }
}
