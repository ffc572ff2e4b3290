//! `migration_config.yaml`: an optional manifest that adds dependencies, descriptions and
//! settings to what the files say. An entry naming a missing file is an error.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{line_of, read_text, yaml_error};
use crate::config::Settings;
use crate::error::SourceError;
use crate::migration::{Dependency, Migration};
use crate::version::Version;

/// The parsed manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub migrations: Vec<ManifestEntry>,
    #[serde(default)]
    pub settings: Option<Settings>,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    text: String,
}

/// One `migrations:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub version: Option<serde_yaml::Value>,
    pub filename: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub dependencies: Vec<serde_yaml::Value>,
    pub rollback_supported: Option<bool>,
    pub estimated_duration_seconds: Option<f64>,
}

fn yaml_scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Self, SourceError> {
        let text = read_text(path)?;
        let mut m: Manifest = serde_yaml::from_str(&text).map_err(|e| yaml_error(path, &e))?;
        m.path = path.to_path_buf();
        m.text = text;
        Ok(m)
    }

    pub(crate) fn apply_to(&self, migrations: &mut [Migration]) -> Result<(), SourceError> {
        for entry in &self.migrations {
            let version = entry.version.as_ref().and_then(yaml_scalar);
            let needle = entry
                .filename
                .as_deref()
                .or(version.as_deref())
                .unwrap_or("");
            let line = line_of(&self.text, needle);
            let target = migrations
                .iter_mut()
                .find(|m| match (&entry.filename, &version) {
                    (Some(f), _) => {
                        m.source.file_name().and_then(|n| n.to_str()) == Some(f.as_str())
                            || m.id == f.trim_end_matches(".sql")
                    }
                    (None, Some(v)) => m.version == Version::new(v.as_str()),
                    (None, None) => false,
                });
            let Some(m) = target else {
                let what = entry
                    .filename
                    .clone()
                    .or(version)
                    .unwrap_or_else(|| "an entry without filename or version".into());
                return Err(SourceError::new(
                    &self.path,
                    Some(line),
                    format!("manifest names `{what}`, which is not in the directory"),
                ));
            };
            if let Some(d) = &entry.description {
                m.description = Some(d.clone());
            }
            for d in &entry.dependencies {
                let t = yaml_scalar(d).ok_or_else(|| {
                    SourceError::new(&self.path, Some(line), "dependencies must be versions")
                })?;
                m.dependencies.push(Dependency {
                    target: t,
                    path: self.path.clone(),
                    line,
                });
            }
        }
        Ok(())
    }
}
