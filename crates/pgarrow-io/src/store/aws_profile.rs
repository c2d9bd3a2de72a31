//! AWS profiles, read as the AWS CLI reads them: `[name]` sections of the credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) and `[profile name]` (or
//! `[default]`) sections of the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`), the
//! profile named by `AWS_PROFILE` (or the `aws_profile` storage option), else `default`.
//!
//! Static keys (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`), `region`
//! and `endpoint_url` are taken. Keys in the environment or the options come first, as in
//! the AWS CLI. A profile that gets its keys from elsewhere (`role_arn`, `sso_*`,
//! `credential_process`) is refused with what to do instead, rather than silently falling
//! through to other credentials.
//!
//! Kept by hand rather than `aws-config` (the AWS SDK's runtime, some hundred crates, for two
//! INI files) or an INI crate (the CLI's rules are the part that matters, and no parser has them).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{Error, Result};

/// The profile to use: the option, else `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else none
/// chosen (`default`, if it is there).
pub(crate) fn chosen(option: Option<&str>) -> Option<String> {
    option
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_PROFILE").ok())
        .filter(|p| !p.is_empty())
}

/// What a profile says.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    values: BTreeMap<String, String>,
}

impl Profile {
    /// The store settings it gives: keys unless `keys_given`, region and endpoint unless the
    /// environment set them.
    pub(crate) fn settings(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (ours, key) in [
            ("aws_access_key_id", "aws_access_key_id"),
            ("aws_secret_access_key", "aws_secret_access_key"),
            ("aws_session_token", "aws_session_token"),
        ] {
            if let Some(v) = self.values.get(key) {
                out.push((ours, v.clone()));
            }
        }
        let env_set = |k: &str| std::env::var_os(k).is_some();
        if !env_set("AWS_REGION")
            && !env_set("AWS_DEFAULT_REGION")
            && let Some(v) = self.values.get("region")
        {
            out.push(("aws_region", v.clone()));
        }
        if !env_set("AWS_ENDPOINT_URL")
            && !env_set("AWS_ENDPOINT")
            && let Some(v) = self.values.get("endpoint_url")
        {
            out.push(("aws_endpoint", v.clone()));
        }
        out
    }
}

fn home_file(env: &str, rest: &str) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rest)))
}

/// The sections of an INI file: `name -> key -> value` (keys lowercased).
fn sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            // Nested settings (`s3 =` followed by indented lines) are not read.
            let value = v.trim();
            if !value.is_empty() {
                out.entry(section.clone())
                    .or_default()
                    .insert(k.trim().to_ascii_lowercase(), value.to_owned());
            }
        }
    }
    out
}

/// Loads the chosen profile. `None` when none was chosen and there is no `default`. With
/// `keys_given` (keys in the environment win) only its region and endpoint are taken.
///
/// # Errors
/// A chosen profile that neither file has, or one whose keys come from a role, SSO or a
/// process.
pub(crate) fn load(chosen: &Option<String>, keys_given: bool) -> Result<Option<Profile>> {
    let name = chosen.as_deref().unwrap_or("default");
    let read = |path: &Option<PathBuf>| {
        path.as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| sections(&t))
            .unwrap_or_default()
    };
    let credentials_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let config_path = home_file("AWS_CONFIG_FILE", ".aws/config");
    let credentials = read(&credentials_path);
    let config = read(&config_path);
    let config_section = match name {
        "default" => config
            .get("default")
            .or_else(|| config.get("profile default")),
        _ => config.get(&format!("profile {name}")),
    };
    let credentials_section = credentials.get(name);
    if credentials_section.is_none() && config_section.is_none() {
        return match chosen {
            None => Ok(None),
            Some(_) => Err(Error::usage(format!(
                "AWS profile {name:?} is in neither {} nor {}",
                shown(&credentials_path),
                shown(&config_path)
            ))),
        };
    }
    let mut profile = Profile::default();
    for section in [config_section, credentials_section].into_iter().flatten() {
        profile
            .values
            .extend(section.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let has_keys = profile.values.contains_key("aws_access_key_id");
    if !keys_given
        && !has_keys
        && let Some(how) = [
            "role_arn",
            "credential_process",
            "sso_session",
            "sso_start_url",
        ]
        .into_iter()
        .find(|k| profile.values.contains_key(*k))
    {
        return Err(Error::usage(format!(
            "AWS profile {name:?} gets its keys through {how}, which pgarrow does not run: \
             export them first (eval \"$(aws configure export-credentials --profile {name} \
             --format env)\")"
        )));
    }
    if keys_given {
        // Keys from the environment or the options win; the profile gives the rest.
        for k in [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        ] {
            profile.values.remove(k);
        }
    }
    Ok(Some(profile))
}

fn shown(path: &Option<PathBuf>) -> String {
    path.as_ref().map_or_else(
        || "~/.aws/credentials".to_owned(),
        |p| p.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections() {
        let s = sections(
            "# c\n[default]\naws_access_key_id = A\n\n[profile dev]\nregion=eu-west-1\n\
             s3 =\n  addressing_style = path\n[dev]\nAWS_Secret_Access_Key = S\n",
        );
        assert_eq!(s["default"]["aws_access_key_id"], "A");
        assert_eq!(s["profile dev"]["region"], "eu-west-1");
        assert_eq!(s["dev"]["aws_secret_access_key"], "S");
        assert!(!s["profile dev"].contains_key("s3"));
    }
}
