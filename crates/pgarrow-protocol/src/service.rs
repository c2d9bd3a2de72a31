//! Service files (`pg_service.conf`): the settings a `service=` name stands for, from the
//! user's file or the system's, as libpq reads them.

use std::path::{Path, PathBuf};

use crate::config::{DEFAULT_SYSCONFDIR, KNOWN_PARAMS, nonempty};
use crate::error::{Error, Result};

/// The settings of service `name`: from `PGSERVICEFILE` (else `~/.pg_service.conf`), else from
/// `PGSYSCONFDIR/pg_service.conf`, the first file that defines it (libpq's `parseServiceInfo`).
pub(crate) fn service_params(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let user_file = nonempty(env("PGSERVICEFILE"))
        .map(PathBuf::from)
        .or_else(|| nonempty(env("HOME")).map(|h| PathBuf::from(h).join(".pg_service.conf")));
    let system_file = PathBuf::from(
        nonempty(env("PGSYSCONFDIR")).unwrap_or_else(|| DEFAULT_SYSCONFDIR.to_owned()),
    )
    .join("pg_service.conf");
    for file in user_file.iter().chain([&system_file]) {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::config(format!(
                    "cannot read service file \"{}\": {e}",
                    file.display()
                )));
            }
        };
        if let Some(params) = parse_service_file(&text, name, file)? {
            return Ok(params);
        }
    }
    Err(Error::config(format!(
        "definition of service \"{name}\" not found"
    )))
}

/// The `key=value` lines of section `[name]`, or `None` if the file has no such section.
pub(crate) fn parse_service_file(
    text: &str,
    name: &str,
    file: &Path,
) -> Result<Option<Vec<(String, String)>>> {
    let mut in_section = false;
    let mut found = None::<Vec<(String, String)>>;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            in_section = section.strip_suffix(']') == Some(name);
            if in_section {
                found = Some(Vec::new());
            }
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::config(format!(
                "syntax error in service file \"{}\", line {}",
                file.display(),
                i + 1
            )));
        };
        let k = k.trim();
        if k == "service" {
            return Err(Error::config(format!(
                "nested service specifications not supported in service file \"{}\", line {}",
                file.display(),
                i + 1
            )));
        }
        if !KNOWN_PARAMS.contains(&k) {
            return Err(Error::config(format!(
                "unknown connection parameter \"{k}\" in service file \"{}\", line {}",
                file.display(),
                i + 1
            )));
        }
        if let Some(params) = found.as_mut() {
            params.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Host, SslMode};

    #[test]
    fn service_files() {
        let dir = tempfile::tempdir().unwrap();
        let user_file = dir.path().join("services.conf");
        std::fs::write(
            &user_file,
            "# services\n[other]\nhost=nowhere\n\n[mydb]\nhost = svc.example\nport=6000\n\
             dbname=svcdb\nuser=svcuser\nsslmode=require\n",
        )
        .unwrap();
        let sysconf = dir.path().join("sys");
        std::fs::create_dir(&sysconf).unwrap();
        std::fs::write(
            sysconf.join("pg_service.conf"),
            "[sysonly]\nhost=sys.example\n[bad]\nbogus=1\n[nested]\nservice=mydb\n",
        )
        .unwrap();
        let (f, s) = (
            user_file.to_string_lossy().into_owned(),
            sysconf.to_string_lossy().into_owned(),
        );
        let env = move |k: &str| match k {
            "PGSERVICEFILE" => Some(f.clone()),
            "PGSYSCONFDIR" => Some(s.clone()),
            "PGPORT" => Some("7777".to_owned()),
            _ => None,
        };
        // The string outranks the service, the service outranks the environment.
        let c = Config::parse_with_env("service=mydb dbname=explicit", &env).unwrap();
        assert_eq!(c.host, Host::Tcp("svc.example".into()));
        assert_eq!(c.port, 6000);
        assert_eq!(c.dbname, "explicit");
        assert_eq!(c.user, "svcuser");
        assert_eq!(c.ssl_mode, SslMode::Require);
        let c = Config::parse_with_env("postgresql:///?service=sysonly", &env).unwrap();
        assert_eq!(c.host, Host::Tcp("sys.example".into()));
        assert_eq!(c.port, 7777);
        let err = Config::parse_with_env("service=missing", &env).unwrap_err();
        assert!(err.to_string().contains("\"missing\" not found"), "{err}");
        let err = Config::parse_with_env("service=bad", &env).unwrap_err();
        assert!(err.to_string().contains("\"bogus\""), "{err}");
        let err = Config::parse_with_env("service=nested", &env).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        // PGSERVICE names the service when the string does not.
        let env2 = move |k: &str| {
            if k == "PGSERVICE" {
                Some("mydb".to_owned())
            } else {
                env(k)
            }
        };
        assert_eq!(Config::parse_with_env("", &env2).unwrap().port, 6000);
    }
}
