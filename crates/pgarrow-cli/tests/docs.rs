//! The documentation's command lines stay true: every `pgarrow` command in a code block of
//! `README.md` and the book (`docs/src/*.md`) is parsed by the CLI's own parser, without
//! running it, and the book shows every command at least once.
//!
//! A command line is found in fenced blocks (shell, console, text or untagged) and indented
//! blocks: trailing-backslash continuations are joined, as is a quote left open at the end
//! of a line; a leading `$ ` prompt (then only prompted lines are commands, the rest is
//! output), environment assignments, and everything from an unquoted `|`, `>`, `<`, `&&`,
//! `;` or `#` comment on are left out. `cargo run ... -p pgarrow-cli -- ARGS` counts as
//! `pgarrow ARGS`, and so does `pgarrow` run by `xargs` or `coproc` (xargs' `-I` placeholder
//! standing for a number).
//!
//! Rust blocks are compiled by `cargo test -p pgarrow --doc` (the `#[cfg(doctest)]` items of
//! `crates/pgarrow/src/lib.rs`): the last test here checks that every page holding one is
//! included there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::FromArgMatches;

#[allow(dead_code)]
#[path = "../src/args.rs"]
mod args;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `README.md` and every page of the book, as (path shown in messages, text).
fn documents() -> Vec<(String, String)> {
    let root = repo_root();
    let mut paths = vec![root.join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs/src"))
        .expect("docs/src, the book's pages")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    paths.extend(pages);
    paths
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let shown = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            (shown, text)
        })
        .collect()
}

/// A code block: its info string (`""` for an indented block) and its lines, each with its
/// line number in the file (from 1).
struct Block {
    lang: String,
    lines: Vec<(usize, String)>,
}

fn is_list_item(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("- ")
        || t.starts_with("* ")
        || t.starts_with("+ ")
        || t.split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The code blocks of a Markdown text: fenced (``` or ~~~, also indented inside list
/// items) and indented (four spaces after a blank line, outside a list).
fn code_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut in_list = false;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let fence = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f));
        if let Some(fence) = fence.filter(|_| indent < 4 || in_list) {
            let marker_len = trimmed.len()
                - trimmed
                    .trim_start_matches(fence.as_bytes()[0] as char)
                    .len();
            let marker = &trimmed[..marker_len];
            let lang = trimmed[marker_len..].trim().to_owned();
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with(marker) {
                // Strip the fence's own indentation, as Markdown does.
                let l = lines[i];
                let strip = l.len() - l.trim_start().len();
                body.push((i + 1, l[strip.min(indent)..].to_owned()));
                i += 1;
            }
            blocks.push(Block { lang, lines: body });
            i += 1;
            continue;
        }
        let after_blank = i == 0 || lines[i - 1].trim().is_empty();
        if indent >= 4 && after_blank && !in_list && !trimmed.is_empty() {
            let mut body = Vec::new();
            while i < lines.len() && (lines[i].starts_with("    ") || lines[i].trim().is_empty()) {
                body.push((i + 1, lines[i].get(4..).unwrap_or("").to_owned()));
                i += 1;
            }
            while body.last().is_some_and(|(_, l)| l.trim().is_empty()) {
                body.pop();
            }
            blocks.push(Block {
                lang: String::new(),
                lines: body,
            });
            continue;
        }
        if !trimmed.is_empty() && indent == 0 {
            in_list = is_list_item(line);
        }
        i += 1;
    }
    blocks
}

/// A piece of a shell line: a word (quotes removed) or where a command ends.
#[derive(Debug, PartialEq)]
enum Piece {
    Word(String),
    /// `|`, `&&`, `;`, `&`: the next command starts after it.
    Next,
    /// `>`, `<` or a `#` comment: nothing more of this command.
    Stop,
}

/// Splits a line as a POSIX shell does, without expanding anything: single quotes keep
/// everything, double quotes keep all but `\"`, `\\`, `\$` and `` \` ``, and a backslash
/// outside quotes keeps the next character. `Err` for a quote left open.
fn shell_split(line: &str) -> Result<Vec<Piece>, &'static str> {
    let mut pieces = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    let end = |word: &mut Option<String>, pieces: &mut Vec<Piece>| {
        if let Some(w) = word.take() {
            pieces.push(Piece::Word(w));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("a single quote left open"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("a double quote left open"),
                        },
                        Some(c) => w.push(c),
                        None => return Err("a double quote left open"),
                    }
                }
            }
            '\\' => {
                if let Some(c) = chars.next() {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            c if c.is_whitespace() => end(&mut word, &mut pieces),
            '#' if word.is_none() => {
                end(&mut word, &mut pieces);
                pieces.push(Piece::Stop);
                break;
            }
            '|' | ';' | '&' => {
                end(&mut word, &mut pieces);
                if matches!(chars.peek(), Some('|' | '&')) {
                    chars.next();
                }
                pieces.push(Piece::Next);
            }
            '>' | '<' => {
                // `2>&1`: the descriptor number is part of the redirection, not a word.
                if word
                    .as_deref()
                    .is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()))
                {
                    word = None;
                }
                end(&mut word, &mut pieces);
                pieces.push(Piece::Stop);
                // The redirection's target is no argument; the command may go on after a
                // `|` or `;`, which the caller finds by skipping to the next `Next`.
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    end(&mut word, &mut pieces);
    Ok(pieces)
}

/// A shell command line of a block: where it starts and its text, continuations joined.
struct Line {
    number: usize,
    text: String,
}

/// The command lines of a block: a `$ ` prompt marks commands when any line has one;
/// backslash continuations and quotes left open join the next line.
fn command_lines(block: &Block) -> Vec<Line> {
    let prompted = block.lines.iter().any(|(_, l)| l.starts_with("$ "));
    let mut out = Vec::new();
    let mut i = 0;
    while i < block.lines.len() {
        let (number, first) = &block.lines[i];
        i += 1;
        let mut text = if prompted {
            match first.strip_prefix("$ ") {
                Some(t) => t.to_owned(),
                None => continue,
            }
        } else {
            first.clone()
        };
        // A trailing backslash joins the next line; so does a quote left open (its newline
        // kept, inside the quoted word).
        while let Some((_, next)) = block.lines.get(i) {
            if let Some(head) = text.strip_suffix('\\') {
                text = format!("{head} {next}");
            } else if shell_split(&text).is_err() {
                text = format!("{text}\n{next}");
            } else {
                break;
            }
            i += 1;
        }
        out.push(Line {
            number: *number,
            text,
        });
    }
    out
}

/// The arguments (after the program name) of each `pgarrow` run on a line.
fn pgarrow_runs(line: &str) -> Result<Vec<Vec<String>>, &'static str> {
    let pieces = shell_split(line)?;
    let mut runs = Vec::new();
    let mut command: Vec<String> = Vec::new();
    let mut stopped = false;
    let mut finish = |command: &mut Vec<String>| {
        if let Some(args) = pgarrow_args(command) {
            runs.push(args);
        }
        command.clear();
    };
    for piece in pieces {
        match piece {
            Piece::Word(w) if !stopped => command.push(w),
            Piece::Word(_) => {}
            Piece::Stop => stopped = true,
            Piece::Next => {
                finish(&mut command);
                stopped = false;
            }
        }
    }
    finish(&mut command);
    Ok(runs)
}

/// The words of one simple command, if it runs pgarrow: the arguments given to it.
fn pgarrow_args(words: &[String]) -> Option<Vec<String>> {
    let mut words = words;
    // Environment assignments before the command: NAME=value.
    while let Some(w) = words.first() {
        let is_assignment = w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit()
        });
        if !is_assignment {
            break;
        }
        words = &words[1..];
    }
    let first = words.first()?;
    if first == "pgarrow" {
        return Some(words[1..].to_vec());
    }
    if first == "cargo" {
        // cargo run [--release] -p pgarrow-cli -- ARGS
        let sep = words.iter().position(|w| w == "--")?;
        let before = &words[..sep];
        let runs_cli = before.get(1).is_some_and(|w| w == "run")
            && before
                .windows(2)
                .any(|p| (p[0] == "-p" || p[0] == "--package") && p[1] == "pgarrow-cli");
        return runs_cli.then(|| words[sep + 1..].to_vec());
    }
    // A wrapper running pgarrow: `coproc NAME { pgarrow ...`, `xargs ... pgarrow ...`.
    let wrappers = ["coproc", "xargs", "time", "nohup", "exec", "sudo", "env"];
    if !wrappers.contains(&first.as_str()) {
        return None;
    }
    let at = words.iter().position(|w| w == "pgarrow")?;
    let mut args = words[at + 1..].to_vec();
    if first == "xargs" {
        let before = &words[..at];
        let placeholder = before.iter().enumerate().find_map(|(k, w)| {
            if w == "-I" {
                before.get(k + 1).cloned()
            } else {
                w.strip_prefix("-I").map(str::to_owned)
            }
        });
        if let Some(p) = placeholder.filter(|p| !p.is_empty()) {
            for a in &mut args {
                *a = a.replace(&p, "1");
            }
        }
    }
    if args.last().is_some_and(|a| a == "}") {
        args.pop();
    }
    Some(args)
}

/// Parses the arguments as `pgarrow` would, without running anything: the subcommand's
/// name, or clap's message.
fn parse(args: &[String]) -> Result<Option<String>, String> {
    let argv = std::iter::once("pgarrow".to_owned()).chain(args.iter().cloned());
    match args::command().try_get_matches_from(argv) {
        Ok(matches) => {
            args::Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
            Ok(matches.subcommand_name().map(str::to_owned))
        }
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(args.first().filter(|a| !a.starts_with('-')).cloned())
        }
        Err(e) => Err(e.render().to_string()),
    }
}

/// Every `pgarrow` command line of the documents, as (file:line, arguments).
fn documented_runs() -> Vec<(String, Vec<String>)> {
    let mut runs = Vec::new();
    for (path, text) in documents() {
        for block in code_blocks(&text) {
            let lang = block.lang.split([',', ' ']).next().unwrap_or("");
            if !["", "bash", "sh", "shell", "console", "zsh", "text"].contains(&lang) {
                continue;
            }
            for line in command_lines(&block) {
                let at = format!("{path}:{}", line.number);
                match pgarrow_runs(&line.text) {
                    Ok(found) => runs.extend(found.into_iter().map(|args| (at.clone(), args))),
                    Err(e) => panic!("{at}: cannot split the line ({e}): {}", line.text),
                }
            }
        }
    }
    runs
}

#[test]
fn every_documented_command_line_parses() {
    let runs = documented_runs();
    assert!(
        runs.len() >= 50,
        "only {} pgarrow command lines found in README.md and docs/src: is the extraction broken?",
        runs.len()
    );
    let failures: Vec<String> = runs
        .iter()
        .filter_map(|(at, args)| {
            parse(args)
                .err()
                .map(|e| format!("{at}: pgarrow {}\n{}", args.join(" "), e.trim_end()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} documented command line(s) that pgarrow's parser refuses:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_book_shows_every_command() {
    let shown: BTreeSet<String> = documented_runs()
        .into_iter()
        .filter(|(at, _)| at.starts_with("docs/"))
        .filter_map(|(_, args)| parse(&args).ok().flatten())
        .collect();
    let missing: Vec<String> = args::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|name| name != "help" && !shown.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "commands no example of the book (docs/src) runs: {missing:?}"
    );
}

#[test]
fn every_rust_example_of_the_book_is_compiled() {
    let root = repo_root();
    let lib = std::fs::read_to_string(root.join("crates/pgarrow/src/lib.rs")).expect("lib.rs");
    let mut unchecked = Vec::new();
    for (path, text) in documents() {
        let has_rust = code_blocks(&text)
            .iter()
            .any(|b| b.lang.split([',', ' ']).next() == Some("rust"));
        let included = format!("include_str!(\"../../../{path}\")");
        if has_rust && !lib.contains(&included) {
            unchecked.push(path);
        }
    }
    assert!(
        unchecked.is_empty(),
        "pages with ```rust blocks that no #[cfg(doctest)] item of crates/pgarrow/src/lib.rs \
         includes (so `cargo test -p pgarrow --doc` does not compile them): {unchecked:?}"
    );
}

#[test]
fn the_splitter_splits_as_a_shell_does() {
    let words = |line: &str| -> Vec<String> {
        shell_split(line)
            .unwrap()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Word(w) => Some(w),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        words(r#"a 'b c' "d \"e\" $f" g\ h"#),
        ["a", "b c", r#"d "e" $f"#, "g h"]
    );
    assert_eq!(words("x'y'\"z\""), ["xyz"]);
    assert!(shell_split("'open").is_err());
    assert_eq!(
        pgarrow_runs("PGPASSWORD=x pgarrow export -t t -o - | pgarrow import - --into u # c")
            .unwrap(),
        [
            vec!["export", "-t", "t", "-o", "-"],
            vec!["import", "-", "--into", "u"]
        ]
    );
    assert_eq!(
        pgarrow_runs("pgarrow plan -t t > plan.json 2>&1; pgarrow man").unwrap(),
        [vec!["plan", "-t", "t"], vec!["man"]]
    );
    assert_eq!(
        pgarrow_runs("seq 0 7 | xargs -P 4 -I{} pgarrow export --part {} -o o-{}.parquet").unwrap(),
        [vec!["export", "--part", "1", "-o", "o-1.parquet"]]
    );
    assert_eq!(
        pgarrow_runs("cargo run --release -p pgarrow-cli -- demo --rows 10").unwrap(),
        [vec!["demo", "--rows", "10"]]
    );
    assert_eq!(
        pgarrow_runs("psql -c 'select 1' && pgarrow schema -q 'select 1'").unwrap(),
        [vec!["schema", "-q", "select 1"]]
    );
    // A bad option is refused with clap's message.
    assert!(parse(&["export".into(), "--no-such-flag".into()]).is_err());
}

/// Every command at every depth (`pgarrow lake compact`, `pgarrow lake expire` too) answers
/// `--help` and `-?` with its help, as the binary parses them (`-h` is the host).
#[test]
fn every_command_at_every_depth_answers_help() {
    fn walk(c: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for s in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = [path, &[s.get_name().to_owned()]].concat();
            walk(s, &path, out);
            out.push(path);
        }
    }
    let mut paths = Vec::new();
    walk(&args::command(), &[], &mut paths);
    assert!(
        paths.contains(&vec!["lake".to_owned(), "compact".to_owned()])
            && paths.contains(&vec!["lake".to_owned(), "expire".to_owned()]),
        "{paths:?}"
    );
    for path in &paths {
        for flag in ["--help", "-?"] {
            let argv = std::iter::once("pgarrow")
                .chain(path.iter().map(String::as_str))
                .chain([flag]);
            let e = args::command()
                .try_get_matches_from(argv)
                .expect_err("help is not a run");
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp,
                "pgarrow {} {flag}: {e}",
                path.join(" ")
            );
            assert!(
                e.to_string().contains("Usage"),
                "pgarrow {} {flag}",
                path.join(" ")
            );
        }
    }
}
