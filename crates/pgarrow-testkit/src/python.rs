//! The Python interpreter the tests run: the one `bash scripts/test-all.sh` set up, found
//! without any variable, so that a plain `cargo test --workspace` after it finds pyarrow, the
//! readers, the emulators and the package.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the Python interpreter to run instead.
pub const PYTHON_ENV: &str = "PGARROW_PYTHON";

/// The virtual environment `scripts/test-all.sh` installs into: `target/venv` of the workspace.
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv")
}

/// The interpreter: `$PGARROW_PYTHON` when set, else the workspace's `target/venv` when it
/// exists, else `python3` from `PATH`.
pub fn python_path() -> PathBuf {
    choose(
        std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()),
        &venv_dir(),
    )
}

fn choose(env: Option<OsString>, venv: &Path) -> PathBuf {
    if let Some(python) = env {
        return PathBuf::from(python);
    }
    let in_venv = venv.join("bin/python3");
    if in_venv.is_file() {
        return in_venv;
    }
    PathBuf::from("python3")
}

/// A [`Command`] running [`python_path`], with the interpreter's own directory first on `PATH`
/// (as an activated virtual environment has it), so that what it starts in turn (Spark's worker
/// processes, console scripts such as moto's server) is of the same environment.
pub fn python() -> Command {
    let python = python_path();
    let mut cmd = Command::new(&python);
    if let Some(bin) = python.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut dirs = vec![bin.to_path_buf()];
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        if let Ok(path) = std::env::join_paths(dirs) {
            cmd.env("PATH", path);
        }
        if let Some(venv) = bin.parent().filter(|v| v.join("pyvenv.cfg").is_file()) {
            cmd.env("VIRTUAL_ENV", venv);
        }
    }
    cmd
}

/// What to tell a test's reader when the interpreter lacks what the test needs.
pub fn how_to_get_python_parts() -> String {
    format!(
        "{} lacks them; `bash scripts/test-all.sh --setup-only` installs every part the tests \
         need (a venv in target/venv, found by the tests without any variable; {PYTHON_ENV} \
         names another interpreter)",
        python_path().display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_then_the_venv_then_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(choose(None, dir.path()), PathBuf::from("python3"));
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/python3"), "").unwrap();
        assert_eq!(choose(None, dir.path()), dir.path().join("bin/python3"));
        assert_eq!(
            choose(Some("/opt/py/bin/python3".into()), dir.path()),
            PathBuf::from("/opt/py/bin/python3")
        );
    }
}
