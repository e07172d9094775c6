//! Calls between core's domains go one way. Every folder (or file) in `src/` is a domain listed in
//! [`DOMAINS`] with the domains it may use; its code names others only through `crate::<domain>`, and this
//! test reads the source to check that each such path is allowed. The crate root (`lib.rs`) wires the
//! services together and may use everything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each domain and the domains below it that it may use (besides itself). Storage and network are side by
/// side: neither uses the other, so a disk never depends on the rules of the machine it is attached to.
const DOMAINS: &[(&str, &[&str])] = &[
    ("platform", &[]),
    ("accounts", &["platform"]),
    ("catalog", &["platform", "accounts"]),
    ("billing", &["platform", "accounts", "catalog"]),
    ("network", &["platform", "accounts", "catalog", "billing"]),
    ("storage", &["platform", "accounts", "catalog", "billing"]),
    (
        "compute",
        &[
            "platform", "accounts", "catalog", "billing", "network", "storage",
        ],
    ),
    // Hosted models, charged through the ledger.
    ("ai", &["platform", "accounts", "catalog", "billing"]),
];

/// Items of the crate root any domain may name.
const ROOT_ITEMS: &[&str] = &["Context", "Error", "Result", "Store"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn allowed(domain: &str) -> Option<&'static [&'static str]> {
    DOMAINS
        .iter()
        .find(|(name, _)| *name == domain)
        .map(|(_, uses)| *uses)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first segment of every `crate::…` path in `code`, comments left out; a group
/// (`crate::{a::b, C}`) gives each of its members.
fn crate_paths(code: &str) -> Vec<String> {
    let code: String = code
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "crate::".len()..];
        rest = after;
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        let after = after.trim_start();
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut member = String::new();
            let mut members = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => members.push(std::mem::take(&mut member)),
                    _ => {}
                }
                if depth == 0 {
                    members.push(std::mem::take(&mut member));
                    break;
                }
                if depth >= 1 && !(c == ',' && depth == 1) {
                    member.push(c);
                }
            }
            for member in members {
                let first: String = member.trim().chars().take_while(|c| is_ident(*c)).collect();
                if !first.is_empty() {
                    found.push(first);
                }
            }
        } else {
            let first: String = after.chars().take_while(|c| is_ident(*c)).collect();
            if !first.is_empty() {
                found.push(first);
            }
        }
    }
    found
}

#[test]
fn every_top_level_module_is_a_listed_domain() {
    let mut unknown = Vec::new();
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" {
            continue;
        }
        if allowed(&name).is_none() {
            unknown.push(name.clone());
        }
        present.insert(name);
    }
    assert!(
        unknown.is_empty(),
        "src/{} is not a domain of the table in crates/core/tests/domains.rs: put the code in the domain \
         it belongs to, or add the new domain to DOMAINS with the domains it may use (and to \
         docs/architecture.md)",
        unknown.join(", src/")
    );
    for (domain, _) in DOMAINS {
        assert!(
            present.contains(*domain),
            "DOMAINS lists '{domain}', which src/ no longer has"
        );
    }
}

#[test]
fn domains_use_only_the_domains_below_them() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(src()).unwrap();
        let domain = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if domain == "lib" {
            continue;
        }
        let Some(uses) = allowed(&domain) else {
            continue; // reported by the test above
        };
        let code = std::fs::read_to_string(file).unwrap();
        for target in crate_paths(&code) {
            let ok = target == domain
                || uses.contains(&target.as_str())
                || ROOT_ITEMS.contains(&target.as_str());
            if !ok {
                let why = if allowed(&target).is_some() {
                    format!("{domain} may not use {target}")
                } else {
                    format!("name the domain in the path, not `crate::{target}`")
                };
                violations.push(format!(
                    "src/{}: crate::{target} ({why})",
                    relative.display()
                ));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "calls between domains must go one way (see DOMAINS in crates/core/tests/domains.rs):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_table_has_no_cycles_and_platform_uses_nothing() {
    assert_eq!(allowed("platform"), Some(&[][..]));
    // Each domain may use only domains listed before it, so the arrows cannot form a circle.
    for (i, (domain, uses)) in DOMAINS.iter().enumerate() {
        for used in *uses {
            let j = DOMAINS.iter().position(|(d, _)| d == used);
            assert!(
                j.is_some_and(|j| j < i),
                "{domain} uses {used}, which is not listed before it"
            );
        }
    }
}

#[test]
fn paths_are_read_from_uses_groups_and_expressions() {
    let code = "use crate::{Context, compute::instances::{A, B}, platform};\n\
                use crate::billing::Depletion;\n\
                // crate::storage in a comment is not a use\n\
                let x = crate::network::check(y); $crate::ignored; barrack_crate::no;";
    assert_eq!(
        crate_paths(code),
        ["Context", "compute", "platform", "billing", "network"]
    );
}
