//! The workspace's guard rails, `scripts/depcheck.py` (which CI runs before clippy): the real
//! workspace passes, and each rule fails a synthetic workspace that breaks it, with a line
//! naming the crate, the dependency and the rule.

use std::path::{Path, PathBuf};
use std::process::Output;

use pgarrow_testkit::python::{python, python_path};

/// The workspace's lint tables, as the synthetic root manifest and its fuzz copy hold them.
const LINTS: &str = "[workspace.lints.rust]\nunsafe_code = \"deny\"\n\n\
                     [workspace.lints.clippy]\ndbg_macro = \"warn\"\n";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/depcheck.py")
}

/// Runs the script with `args`; `None` (after `missing`) without a Python.
fn depcheck(args: &[&std::ffi::OsStr]) -> Option<Output> {
    // The cargo of this build, for the script's `cargo metadata`.
    let run = python()
        .arg(script())
        .args(args)
        .env("CARGO", env!("CARGO"))
        .output();
    match run {
        Ok(out) => Some(out),
        Err(e) => {
            pgarrow_testkit::missing(
                "python3 (scripts/depcheck.py)",
                &format!("{} cannot run: {e}", python_path().display()),
            );
            None
        }
    }
}

/// A dependency: (crate, kind), the kind as `cargo metadata` has it.
type Dep = (&'static str, Option<&'static str>);

/// A synthetic workspace: crates, their dependencies on each other (and on arrow-array), and
/// whether each inherits the workspace's lints.
#[derive(Debug, Clone)]
struct Workspace {
    crates: Vec<(&'static str, Vec<Dep>, bool)>,
    fuzz_lints: String,
}

impl Workspace {
    /// Today's shape, which passes.
    fn layered() -> Workspace {
        const DEV: Option<&str> = Some("dev");
        let crates = vec![
            ("pgarrow-types", vec![], true),
            (
                "pgarrow-protocol",
                vec![("pgarrow-testkit", DEV), ("arrow-array", DEV)],
                true,
            ),
            (
                "pgarrow-decode",
                vec![
                    ("pgarrow-types", None),
                    ("arrow-array", None),
                    ("pgarrow-protocol", DEV),
                    ("pgarrow-testkit", DEV),
                ],
                true,
            ),
            (
                "pgarrow-encode",
                vec![("pgarrow-types", None), ("pgarrow-decode", DEV)],
                true,
            ),
            (
                "pgarrow",
                vec![
                    ("pgarrow-protocol", None),
                    ("pgarrow-decode", None),
                    ("pgarrow-encode", None),
                    ("pgarrow-scratch", DEV),
                    ("pgarrow-testkit", DEV),
                ],
                true,
            ),
            (
                "pgarrow-cli",
                vec![("pgarrow", None), ("pgarrow-scratch", None)],
                true,
            ),
            ("pgarrow-adbc", vec![("pgarrow", None)], true),
            (
                "pgarrow-python",
                vec![("pgarrow", None), ("pgarrow-adbc", None)],
                true,
            ),
            ("pgarrow-scratch", vec![("pgarrow-testkit", DEV)], true),
            ("pgarrow-testkit", vec![("pgarrow-scratch", None)], true),
        ];
        Workspace {
            crates,
            fuzz_lints: LINTS.to_string(),
        }
    }

    fn with_dep(mut self, from: &str, dep: Dep) -> Workspace {
        let c = self.crates.iter_mut().find(|c| c.0 == from).unwrap();
        c.1.push(dep);
        self
    }

    /// Writes its manifests and its metadata under `dir`; returns the metadata's path.
    fn write(&self, dir: &Path) -> PathBuf {
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[workspace]\nmembers = []\n\n{LINTS}"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("fuzz")).unwrap();
        std::fs::write(
            dir.join("fuzz/Cargo.toml"),
            format!(
                "[workspace]\n\n{}\n[lints]\nworkspace = true\n",
                self.fuzz_lints
            ),
        )
        .unwrap();
        let mut packages = Vec::new();
        for (name, deps, lints) in &self.crates {
            let manifest = dir.join("crates").join(name).join("Cargo.toml");
            std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
            let table = if *lints {
                "[lints]\nworkspace = true\n"
            } else {
                ""
            };
            std::fs::write(
                &manifest,
                format!("[package]\nname = \"{name}\"\n\n{table}"),
            )
            .unwrap();
            let deps: Vec<String> = deps
                .iter()
                .map(|(dep, kind)| {
                    let kind = kind.map_or("null".to_string(), |k| format!("\"{k}\""));
                    format!(r#"{{"name": "{dep}", "kind": {kind}}}"#)
                })
                .collect();
            packages.push(format!(
                r#"{{"name": "{name}", "id": "{name} 0.1.0", "manifest_path": {}, "dependencies": [{}]}}"#,
                json_string(&manifest),
                deps.join(", ")
            ));
        }
        let members: Vec<String> = self
            .crates
            .iter()
            .map(|c| format!("\"{} 0.1.0\"", c.0))
            .collect();
        let metadata = dir.join("metadata.json");
        std::fs::write(
            &metadata,
            format!(
                r#"{{"packages": [{}], "workspace_members": [{}], "workspace_root": {}}}"#,
                packages.join(", "),
                members.join(", "),
                json_string(dir)
            ),
        )
        .unwrap();
        metadata
    }

    /// The script's verdict on it: `None` without a Python.
    fn check(&self) -> Option<(bool, String)> {
        let dir = tempfile::tempdir().unwrap();
        let metadata = self.write(dir.path());
        let out = depcheck(&["--metadata".as_ref(), metadata.as_os_str()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "depcheck wrote to stderr: {stderr}");
        let passed = match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            other => panic!("depcheck exited with {other:?}"),
        };
        Some((passed, String::from_utf8(out.stdout).unwrap()))
    }
}

fn json_string(path: &Path) -> String {
    let s = path.to_str().unwrap();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn the_workspace_is_layered() {
    let Some(out) = depcheck(&[]) else { return };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/depcheck.py fails on the workspace:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("no crate depends on one above it"),
        "{stdout}"
    );
}

#[test]
fn a_layered_workspace_passes() {
    let Some((passed, stdout)) = Workspace::layered().check() else {
        return;
    };
    assert!(passed, "{stdout}");
    assert!(
        stdout.ends_with(
            "depcheck: 10 crates, 18 dependencies between them: no crate depends on one above \
             it, and every crate inherits the workspace's lints\n"
        ),
        "{stdout}"
    );
}

/// Each broken rule fails the check with exactly one line, this one.
#[test]
fn each_rule_fails_with_a_line_naming_it() {
    let cases: Vec<(Workspace, &str)> = vec![
        (
            Workspace::layered().with_dep("pgarrow-decode", ("pgarrow", None)),
            "pgarrow-decode -> pgarrow (dependency): pgarrow-decode is in layer \"parts\", \
             pgarrow in layer \"engine\" above it: no crate depends on one above it",
        ),
        (
            Workspace::layered().with_dep("pgarrow-types", ("pgarrow-decode", Some("dev"))),
            "pgarrow-types -> pgarrow-decode (dev-dependency): pgarrow-types is in layer \
             \"types\", pgarrow-decode in layer \"parts\" above it: no crate depends on one \
             above it",
        ),
        (
            Workspace::layered().with_dep("pgarrow-decode", ("pgarrow-encode", None)),
            "pgarrow-decode -> pgarrow-encode (dependency): both are in layer \"parts\", whose \
             crates are independent (only tests may use a sibling, as a dev-dependency)",
        ),
        (
            Workspace::layered().with_dep("pgarrow-cli", ("pgarrow-adbc", None)),
            "pgarrow-cli -> pgarrow-adbc (dependency): both are in layer \"doors\", whose \
             crates are independent (only tests may use a sibling, as a dev-dependency)",
        ),
        (
            Workspace::layered().with_dep("pgarrow", ("pgarrow-testkit", None)),
            "pgarrow -> pgarrow-testkit (dependency): pgarrow-testkit is test tooling: a \
             library crate takes it as a dev-dependency only",
        ),
        (
            Workspace::layered().with_dep("pgarrow", ("pgarrow-scratch", None)),
            "pgarrow -> pgarrow-scratch (dependency): pgarrow-scratch is test tooling: a \
             library crate takes it as a dev-dependency only",
        ),
        (
            Workspace::layered().with_dep("pgarrow-testkit", ("pgarrow-protocol", None)),
            "pgarrow-testkit -> pgarrow-protocol (dependency): test tooling depends on no \
             library crate (layer \"parts\"), so that every crate can test with it without a \
             cycle",
        ),
        (
            Workspace::layered().with_dep("pgarrow-scratch", ("pgarrow-testkit", None)),
            "pgarrow-scratch -> pgarrow-testkit (dependency): pgarrow-scratch comes before \
             pgarrow-testkit in TOOLING: a tool depends only on those before it",
        ),
        (
            Workspace::layered().with_dep("pgarrow-protocol", ("arrow-array", None)),
            "pgarrow-protocol -> arrow-array (dependency): the protocol knows no Arrow",
        ),
        (
            {
                let mut ws = Workspace::layered();
                ws.crates.push(("pgarrow-new", vec![], true));
                ws
            },
            "pgarrow-new: in no layer: place it in LAYERS or TOOLING of scripts/depcheck.py",
        ),
        (
            {
                let mut ws = Workspace::layered();
                ws.crates[0].2 = false;
                ws
            },
            "pgarrow-types: does not inherit the workspace's lints: add `[lints]` with \
             `workspace = true` to crates/pgarrow-types/Cargo.toml",
        ),
        (
            Workspace {
                fuzz_lints: LINTS.replace("deny", "warn"),
                ..Workspace::layered()
            },
            "fuzz/Cargo.toml: its [workspace.lints] tables differ from the workspace's \
             Cargo.toml: it is a workspace of its own and keeps a copy, which must be equal",
        ),
    ];
    for (ws, expected) in cases {
        let Some((passed, stdout)) = ws.check() else {
            return;
        };
        assert!(!passed, "passed, expected {expected}:\n{stdout}");
        let failures: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("depcheck: FAIL "))
            .collect();
        assert_eq!(failures, [expected], "{stdout}");
        assert!(
            stdout.ends_with(
                "depcheck: 1 violation(s) of the layering and lint rules in scripts/depcheck.py\n"
            ),
            "{stdout}"
        );
    }
}
