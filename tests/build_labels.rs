//! `build::dockerfile`, `build::opts` and `build::container_yaml`: labels read from real-world
//! Dockerfile shapes, the buildContainer opts rules with their fault codes and texts,
//! container.yaml parsing, the arch list, NVR/release and the tag sets.
//!
//! One test checks our label expansion against buildah itself (a `FROM scratch` build needs no
//! network); without buildah it prints "skipping" and passes.

use std::collections::BTreeMap;
use std::process::Command;

use containerbuild::build::container_yaml::{ArchList, BuildTag, ContainerYaml, arch_list};
use containerbuild::build::dockerfile::{
    AutoLabels, Dockerfile, Labels, TagSet, add_labels, add_release_env, image_labels,
    labels_to_add, next_release, replace_last_from, repositories, repository, tag_set,
};
use containerbuild::build::opts::{BuildKind, BuildOpts};
use containerbuild::xmlrpc::{Fault, Struct, Value};

fn labels(text: &str) -> Labels {
    Dockerfile::parse(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .labels()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fault(code: i32, message: &str) -> Fault {
    Fault {
        code,
        message: message.to_string(),
    }
}

// --- Dockerfile labels ----------------------------------------------------------------------

const DIRECTIVES: &str = r#"# syntax=docker/dockerfile:1.4
# escape=`
ARG BASE=registry.example.com/fedora:40
from ${BASE} as builder
run --mount=type=cache,target=/var/cache/dnf <<EOT bash
set -e
echo "LABEL name=not-a-label"
EOT
FROM builder
env VERSION=1.2 `
    COMPONENT=foo
label com.redhat.component="$COMPONENT" `
      name="ns/foo" `
      version="${VERSION}" `
      release=3 `
      quoted="a`"b"
onbuild LABEL version=9
copy --from=builder /out /out
CMD ["/bin/sh", "-c", "echo"]
"#;

#[test]
fn directives_heredoc_lowercase_escape() {
    let got = labels(DIRECTIVES);
    assert_eq!(
        got,
        l(&[
            ("com.redhat.component", "foo"),
            ("name", "ns/foo"),
            ("version", "1.2"),
            ("release", "3"),
            ("quoted", "a\"b"),
        ])
    );
    let il = image_labels(&got, None).unwrap();
    assert_eq!(il.nvr().as_deref(), Some("foo-1.2-3"));
    let df = Dockerfile::parse(DIRECTIVES).unwrap();
    assert_eq!(df.escape(), '`');
    assert_eq!(
        df.parent_images().unwrap(),
        ["registry.example.com/fedora:40", "builder"]
    );
    assert_eq!(df.base_image().unwrap(), "registry.example.com/fedora:40");
}

/// Expansion and scoping, as buildah 1.28 built this very file (see `buildah_agrees`).
const SCOPES: &str = r#"ARG G=global
ARG X=gx
FROM scratch AS base
ARG G
ARG X=stagex
ENV E1=e1 E2=${E1}-two
ENV LEG legacy value  with spaces
LABEL a="$G" b=$X c="${U:-dflt}" d="${E1:+set}" e='$E1' f=${E2} \
      g="multi \
line" "h i"=j
LABEL l="a\"b" m=a\ b
FROM base
LABEL n=$E1 o=$G p=$LEG
"#;

fn scopes_expected() -> Labels {
    l(&[
        ("a", "global"),
        ("b", "stagex"),
        ("c", "dflt"),
        ("d", "set"),
        ("e", "$E1"),
        ("f", "-two"),
        ("g", "multi line"),
        ("h i", "j"),
        ("l", "a\"b"),
        ("m", "a b"),
        ("n", "e1"),
        ("o", ""),
        ("p", "legacy value  with spaces"),
    ])
}

#[test]
fn arg_env_scoping() {
    assert_eq!(labels(SCOPES), scopes_expected());
    // A build arg beats the stage default, which beats the global one.
    let df = Dockerfile::parse(SCOPES).unwrap();
    let args: BTreeMap<String, String> = [("X".to_string(), "cli".to_string())].into();
    assert_eq!(df.labels_with_args(&args).unwrap()["b"], "cli");
}

/// Our labels for these files must be what buildah puts in the image. (buildah 1.28's shell
/// lexer ignores `# escape=` inside words, BuildKit does not: backtick files here only use the
/// escape character for line continuations.)
fn oracle_cases() -> Vec<String> {
    let plain = vec![
        ("release".to_string(), "4".to_string()),
        ("build-date".to_string(), "2024-01-02T03:04:05".to_string()),
    ];
    let tricky = vec![
        ("release".to_string(), "4".to_string()),
        ("tricky".to_string(), "a \"q\" $HOME \\ `b` 'c'".to_string()),
    ];
    vec![
        SCOPES.to_string(),
        add_labels(
            "# escape=`\nFROM scratch\nENV V=1 `\n    W=2\nLABEL b=$V$W c=${V:+$W} `\n   d=plain\n",
            &plain,
        ),
        add_labels("FROM scratch\nLABEL name=n version=1\n", &tricky),
    ]
}

#[test]
fn buildah_agrees() {
    assert_eq!(labels(SCOPES), scopes_expected());
    let Ok(out) = Command::new("buildah").arg("--version").output() else {
        println!("skipping: no buildah");
        return;
    };
    if !out.status.success() || unsafe { libc::geteuid() } != 0 {
        println!("skipping: buildah needs root here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let run = dir.path().join("run");
    let buildah = |args: &[&str]| {
        Command::new("buildah")
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&run)
            .args(["--storage-driver", "vfs"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    for (i, text) in oracle_cases().iter().enumerate() {
        std::fs::write(dir.path().join("Dockerfile"), text).unwrap();
        let name = format!("labels-oracle-{i}");
        let built = buildah(&["bud", "--isolation", "chroot", "-t", &name, "."]);
        assert!(
            built.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let inspected = buildah(&["inspect", &name]);
        let doc: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
        let mut theirs: Labels =
            serde_json::from_value(doc["OCIv1"]["config"]["Labels"].clone()).unwrap();
        theirs.remove("io.buildah.version");
        assert_eq!(labels(text), theirs, "{text}");
    }
}

#[test]
fn multi_line_label_and_env_version() {
    let text = "FROM fedora:40\n\
                ENV NAME=httpd \\\n    VERSION=2.4\n\
                LABEL com.redhat.component=\"$NAME-container\" \\\n\
                \x20     name=\"fedora/$NAME\" \\\n\
                \x20     # a comment line inside the continuation\n\
                \x20     version=\"$VERSION\"\n";
    let il = image_labels(&labels(text), None).unwrap();
    assert_eq!(il.component, "httpd-container");
    assert_eq!(il.name, "fedora/httpd");
    assert_eq!(il.version, "2.4");
    assert_eq!(il.release, None);
    assert_eq!(il.nvr(), None);
    // opts.release overrides the label.
    let il = image_labels(&labels(text), Some("7")).unwrap();
    assert_eq!(il.nvr().as_deref(), Some("httpd-container-2.4-7"));
}

#[test]
fn old_label_names_and_precedence() {
    let got = labels("FROM x\nLABEL BZComponent=c Name=n Version=1 Release=2 version=3\n");
    let il = image_labels(&got, None).unwrap();
    assert_eq!(
        (il.component.as_str(), il.name.as_str(), il.version.as_str()),
        ("c", "n", "3")
    );
    assert_eq!(il.release.as_deref(), Some("2"));
    let il = image_labels(&got, Some("9")).unwrap();
    assert_eq!(il.release.as_deref(), Some("9"));
}

#[test]
fn multi_stage_uses_the_last_stage() {
    let text = "FROM a AS one\nLABEL name=x com.redhat.component=c version=1\n\
                FROM b\nLABEL version=2\n";
    assert_eq!(labels(text), l(&[("version", "2")]));
    assert_eq!(
        image_labels(&labels(text), None).unwrap_err(),
        fault(
            1005,
            "Required LABELs haven't been found in Dockerfile: name (or Name), com.redhat.component (or BZComponent)."
        )
    );
    // A stage built FROM an earlier one inherits its labels and ENV.
    let text = "FROM a AS One\nENV V=5\nLABEL name=x com.redhat.component=c\n\
                FROM one\nLABEL version=$V\n";
    assert_eq!(
        labels(text),
        l(&[
            ("name", "x"),
            ("com.redhat.component", "c"),
            ("version", "5")
        ])
    );
}

#[test]
fn missing_and_empty_labels() {
    let e = image_labels(&labels("FROM x\nRUN true\n"), None).unwrap_err();
    assert_eq!(
        e,
        fault(
            1005,
            "Required LABELs haven't been found in Dockerfile: name (or Name), com.redhat.component (or BZComponent), version (or Version)."
        )
    );
    // name and component must have values; version only has to be there...
    let e = image_labels(
        &labels("FROM x\nLABEL name=\"\" com.redhat.component=c version=$NOPE\n"),
        None,
    )
    .unwrap_err();
    assert_eq!(
        e,
        fault(
            1005,
            "Required LABELs haven't been found in Dockerfile: name (or Name)."
        )
    );
    // ...but an empty one fails when the release is bumped (atomic-reactor), as does an empty
    // release label.
    let e = image_labels(
        &labels("FROM x\nLABEL name=n com.redhat.component=c Version=$NOPE release=\n"),
        None,
    )
    .unwrap_err();
    assert_eq!(
        e,
        fault(
            2001,
            "Image build failed. Required labels are missing or empty or using undefined variables: {'Version': 'empty', 'release': 'empty'}"
        )
    );
}

#[test]
fn osbs_label_formats() {
    let base = "FROM x\nLABEL name=n com.redhat.component=c ";
    let check = |extra: &str| image_labels(&labels(&format!("{base}{extra}\n")), None);
    assert_eq!(
        check("version=1 release=1-2").unwrap_err(),
        fault(
            2001,
            "OSBS validation exception: release label doesn't have proper format"
        )
    );
    assert_eq!(
        check("version=1-2").unwrap_err(),
        fault(
            2001,
            "OSBS validation exception: version label '1-2' contains not allowed chars : '['-']'"
        )
    );
    assert_eq!(
        image_labels(
            &labels("FROM x\nLABEL name=a.b/c com.redhat.component=c version=1\n"),
            None
        )
        .unwrap_err(),
        fault(
            2001,
            "OSBS validation exception: initial image name component must not contain '.'"
        )
    );
    assert!(check("version=1 release=1.el9_2").is_ok());
}

#[test]
fn parse_errors_are_build_errors() {
    let e = Dockerfile::parse("LABEL a=b\n").unwrap_err();
    assert_eq!(e.code, 1005);
    assert!(e.message.starts_with("Cannot parse Dockerfile: "), "{e}");
    let e = Dockerfile::parse("FROM x\nLABEL a=b c\n")
        .unwrap()
        .labels()
        .unwrap_err();
    assert_eq!(
        e,
        fault(
            1005,
            "Cannot parse Dockerfile: line 2: Syntax error - can't find = in \"c\". Must be of the form: name=value"
        )
    );
    let e = Dockerfile::parse("FROM x\nENV A=1\nLABEL v=${A:?}\nLABEL w=\"${B:?no B}\"\n")
        .unwrap()
        .labels()
        .unwrap_err();
    assert_eq!(e.message, "Cannot parse Dockerfile: line 4: B: no B");
}

// --- Dockerfile edits -----------------------------------------------------------------------

#[test]
fn replace_the_last_from() {
    let text = "ARG B=base:1\nFROM golang AS build\nRUN make\nFROM ${B} AS final\nCOPY --from=build /x /x\n";
    assert_eq!(
        replace_last_from(text, "registry/parent@sha256:abc").unwrap(),
        "ARG B=base:1\nFROM golang AS build\nRUN make\nFROM registry/parent@sha256:abc AS final\nCOPY --from=build /x /x\n"
    );
    // FROM an earlier stage: that stage's parent is the one replaced.
    let text = "FROM fedora:40 AS base\nRUN x\nFROM base\nLABEL a=b\n";
    assert_eq!(
        replace_last_from(text, "p:1").unwrap(),
        "FROM p:1 AS base\nRUN x\nFROM base\nLABEL a=b\n"
    );
    assert_eq!(
        replace_last_from("FROM x AS b\nFROM scratch\n", "p").unwrap_err(),
        fault(
            2001,
            "Image build failed. from scratch can't inject parent image"
        )
    );
}

#[test]
fn added_labels_read_back() {
    let text = "FROM x\nLABEL name=n com.redhat.component=c version=1\nCMD [\"sh\"]";
    let add = vec![
        ("release".to_string(), "4".to_string()),
        ("tricky".to_string(), "a \"q\" $HOME \\ `b`".to_string()),
    ];
    let out = add_labels(text, &add);
    assert_eq!(
        out,
        format!("{text}\nLABEL \"release\"=\"4\" \"tricky\"=\"a \\\"q\\\" \\$HOME \\\\ `b`\"\n")
    );
    let got = labels(&out);
    assert_eq!(got["release"], "4");
    assert_eq!(got["tricky"], "a \"q\" $HOME \\ `b`");
    // With the backtick escape character.
    let text = "# escape=`\nFROM x\n";
    let got = labels(&add_labels(text, &add));
    assert_eq!(got["tricky"], "a \"q\" $HOME \\ `b`");
    assert_eq!(add_labels(text, &[]), text);
}

#[test]
fn osbs_auto_labels() {
    let df = l(&[
        ("name", "n"),
        ("BZComponent", "c"),
        ("Version", "1"),
        ("release", "2"),
        ("architecture", "x86_64"),
    ]);
    let auto = AutoLabels {
        release: "3",
        architecture: "x86_64",
        build_date: "2024-01-02T03:04:05",
        vcs_type: "git",
        vcs_ref: "0123abcd",
    };
    assert_eq!(
        labels_to_add(&df, &auto),
        [
            ("release", "3"),
            ("build-date", "2024-01-02T03:04:05"),
            ("vcs-type", "git"),
            ("vcs-ref", "0123abcd"),
            ("version", "1"),
            ("com.redhat.component", "c"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[test]
fn release_env_in_every_stage() {
    let text = "FROM a AS b\nRUN x\nFROM b\nCMD y";
    assert_eq!(
        add_release_env(text, "RELEASE", "5").unwrap(),
        "FROM a AS b\nENV RELEASE=\"5\"\nRUN x\nFROM b\nENV RELEASE=\"5\"\nCMD y"
    );
    let out = add_release_env("FROM a", "R", "1").unwrap();
    assert_eq!(out, "FROM a\nENV R=\"1\"\n");
    let df = Dockerfile::parse(&format!("{out}LABEL r=$R\n")).unwrap();
    assert_eq!(df.labels().unwrap()["r"], "1");
}

// --- NVR, release, tags ---------------------------------------------------------------------

#[test]
fn next_release_like_bump_release() {
    let none = |_: &str| false;
    assert_eq!(next_release(None, None, none).unwrap(), "1");
    assert_eq!(next_release(Some("3"), None, none).unwrap(), "4");
    // Koji's N.dist keeps the dist; a numeric second part is dropped.
    assert_eq!(next_release(Some("3.el9"), None, none).unwrap(), "4.el9");
    assert_eq!(next_release(Some("3.1"), None, none).unwrap(), "4");
    // Koji cannot increment it: the newest N[.M] release plus one.
    assert_eq!(
        next_release(Some("a.b.c.d"), Some("7.2"), none).unwrap(),
        "8"
    );
    assert_eq!(next_release(Some("a.b.c.d"), None, none).unwrap(), "1");
    // Taken NVRs (a failed build would not count) are skipped.
    let taken = |r: &str| r == "4" || r == "5";
    assert_eq!(next_release(Some("3"), None, taken).unwrap(), "6");
}

fn tags(t: &TagSet) -> Vec<&str> {
    t.all().collect()
}

#[test]
fn tag_sets() {
    let unique = "f40-container-candidate-12345-20240101000000";
    let normal = tag_set(BuildKind::Normal, unique, "1.2", "3", None).unwrap();
    assert_eq!(normal.primary, ["1.2-3"]);
    assert_eq!(normal.unique, [unique]);
    assert_eq!(normal.floating, ["latest", "1.2"]);
    assert_eq!(tags(&normal), ["1.2-3", unique, "latest", "1.2"]);
    let scratch = tag_set(BuildKind::Scratch, unique, "1.2", "scratch-1-2", None).unwrap();
    assert_eq!(tags(&scratch), [unique]);
    let isolated = tag_set(BuildKind::Isolated, unique, "1.2", "3.1", None).unwrap();
    assert_eq!(tags(&isolated), ["1.2-3.1", unique]);
    // container.yaml tags replace the floating ones; a repeat of the primary stays floating.
    let yaml = ["stable".to_string(), "1.2-3".to_string()];
    let t = tag_set(BuildKind::Normal, unique, "1.2", "3", Some(&yaml)).unwrap();
    assert_eq!(t.primary, Vec::<String>::new());
    assert_eq!(t.floating, ["stable", "1.2-3"]);
    // Empty yaml tag list (all dropped as invalid): no floating tags at all.
    let t = tag_set(BuildKind::Normal, unique, "1.2", "3", Some(&[])).unwrap();
    assert_eq!(tags(&t), ["1.2-3", unique]);

    let repo = repository("localhost:5000", None, "ns/app").unwrap();
    assert_eq!(
        repositories(&repo, &isolated),
        [
            "localhost:5000/ns/app:1.2-3.1".to_string(),
            format!("localhost:5000/ns/app:{unique}")
        ]
    );
}

#[test]
fn tag_rules() {
    let long = "9".repeat(126);
    assert_eq!(
        tag_set(BuildKind::Normal, "u", &long, "12", None).unwrap_err(),
        fault(
            1005,
            "Docker cannot create image with a tag longer than 128, current version-release tag length is 129"
        )
    );
    assert!(tag_set(BuildKind::Normal, "u", &"9".repeat(125), "12", None).is_ok());
    let e = tag_set(BuildKind::Normal, "u", "1+git", "1", None).unwrap_err();
    assert_eq!(e.code, 1005);
    assert!(e.message.starts_with("Invalid image tag '1+git-1'"), "{e}");
    let e = tag_set(BuildKind::Scratch, &"t".repeat(129), "1", "1", None).unwrap_err();
    assert!(e.message.starts_with("Invalid image tag"), "{e}");
}

// --- opts -----------------------------------------------------------------------------------

fn opts(pairs: Vec<(&str, Value)>) -> Value {
    let mut s = Struct::new();
    for (k, v) in pairs {
        s.insert(k, v);
    }
    Value::Struct(s)
}

fn branch() -> (&'static str, Value) {
    ("git_branch", Value::str("main"))
}

#[test]
fn opts_rules_table() {
    let repos = || Value::Array(vec![Value::str("http://x/a.repo")]);
    let cases: Vec<(Value, i32, &str)> = vec![
        (
            opts(vec![branch(), ("scrach", true.into())]),
            1,
            "jsonschema.exceptions.ValidationError: Additional properties are not allowed ('scrach' was unexpected)\n\nFailed validating 'additionalProperties' in schema['items'][2]\n\nOn instance[2]:\n    {'git_branch': 'main', 'scrach': True}",
        ),
        (
            opts(vec![
                ("zz", 1.into()),
                ("aa", 1.into()),
                ("scratch", 5.into()),
            ]),
            1,
            "jsonschema.exceptions.ValidationError: Additional properties are not allowed ('aa', 'zz' were unexpected)\n\nFailed validating 'additionalProperties' in schema['items'][2]\n\nOn instance[2]:\n    {'zz': 1, 'aa': 1, 'scratch': 5}",
        ),
        (
            opts(vec![branch(), ("scratch", Value::str("yes"))]),
            1,
            "jsonschema.exceptions.ValidationError: 'yes' is not of type 'boolean'\n\nFailed validating 'type' in schema['items'][2]['properties']['scratch']\n\nOn instance[2]['scratch']:\n    'yes'",
        ),
        (
            opts(vec![
                branch(),
                ("compose_ids", vec![Value::str("1")].into()),
            ]),
            1,
            "jsonschema.exceptions.ValidationError: '1' is not of type 'integer'\n\nFailed validating 'type' in schema['items'][2]['properties']['compose_ids']['items']\n\nOn instance[2]['compose_ids'][0]:\n    '1'",
        ),
        (
            opts(vec![("release", 5.into())]),
            1,
            "jsonschema.exceptions.ValidationError: 5 is not of type 'string', 'null'\n\nFailed validating 'type' in schema['items'][2]['properties']['release']\n\nOn instance[2]['release']:\n    5",
        ),
        (
            Value::Nil,
            1,
            "jsonschema.exceptions.ValidationError: None is not of type 'object'\n\nFailed validating 'type' in schema['items'][2]\n\nOn instance[2]:\n    None",
        ),
        (opts(vec![]), 1005, "Git branch must be specified"),
        (
            opts(vec![("git_branch", Value::Nil)]),
            1005,
            "Git branch must be specified",
        ),
        (
            opts(vec![
                branch(),
                ("scratch", true.into()),
                ("isolated", true.into()),
            ]),
            1005,
            "Build cannot be both isolated and scratch",
        ),
        (
            opts(vec![branch(), ("arch_override", Value::str("x86_64"))]),
            1005,
            "arch-override is only allowed for isolated or scratch builds",
        ),
        (
            opts(vec![branch(), ("arch_override", Value::str("  "))]),
            1005,
            "arch-override is only allowed for isolated or scratch builds",
        ),
        (
            opts(vec![branch(), ("flatpak", true.into())]),
            1005,
            "Unsupported option flatpak: this build service does not build Flatpaks",
        ),
        (
            opts(vec![branch(), ("skip_build", true.into())]),
            1005,
            "'skip_build' functionality has been removed",
        ),
        (
            opts(vec![
                branch(),
                ("signing_intent", Value::str("release")),
                ("compose_ids", vec![Value::Int(1)].into()),
            ]),
            1005,
            "signing_intent used with compose_ids",
        ),
        (
            opts(vec![
                branch(),
                (
                    "operator_csv_modifications_url",
                    Value::str("https://x/y.json"),
                ),
            ]),
            2001,
            "Only isolated build can update operator CSV metadata",
        ),
        (
            opts(vec![branch(), ("isolated", true.into())]),
            2001,
            "OSBS validation exception: The release parameter is required for isolated builds.",
        ),
        (
            opts(vec![
                branch(),
                ("isolated", true.into()),
                ("release", Value::str("5")),
            ]),
            2001,
            r"OSBS validation exception: For isolated builds, the release value must be in the format: ^\d+\.\d+(\..+)?$",
        ),
        (
            opts(vec![branch(), ("compose_ids", vec![Value::Int(7)].into())]),
            2001,
            "Unsupported option compose_ids: this build service has no ODCS, so it cannot use ODCS composes",
        ),
        (
            opts(vec![branch(), ("signing_intent", Value::str("release"))]),
            2001,
            "Unsupported option signing_intent: this build service has no ODCS, so there are no signing intents to choose",
        ),
        (
            opts(vec![
                branch(),
                (
                    "dependency_replacements",
                    vec![Value::str("gomod:a:1")].into(),
                ),
            ]),
            2001,
            "Unsupported option dependency_replacements: this build service has no Cachito or Hermeto remote sources to replace dependencies in",
        ),
        (
            opts(vec![
                branch(),
                ("isolated", true.into()),
                ("release", Value::str("1.1")),
                (
                    "operator_csv_modifications_url",
                    Value::str("https://x/y.json"),
                ),
            ]),
            2001,
            "Unsupported option operator_csv_modifications_url: this build service does not modify operator CSV metadata",
        ),
    ];
    for (v, code, text) in cases {
        let got = BuildOpts::from_value(&v).unwrap_err();
        assert_eq!(got, fault(code, text), "opts {v:?}");
    }

    // Accepted: nulls and empty values where the schema allows them.
    let ok = BuildOpts::from_value(&opts(vec![
        branch(),
        ("yum_repourls", repos()),
        ("compose_ids", Value::Array(vec![])),
        ("signing_intent", Value::Nil),
        ("dependency_replacements", Value::Nil),
        ("arch_override", Value::str("")),
        ("skip_build", false.into()),
        ("userdata", Value::Struct(Struct::new().with("a", 1))),
    ]))
    .unwrap();
    assert_eq!(ok.kind(), BuildKind::Normal);
    assert_eq!(ok.arch_override, None);
    let isolated = BuildOpts::from_value(&opts(vec![
        branch(),
        ("isolated", true.into()),
        ("release", Value::str("2.1")),
        ("arch_override", Value::str("x86_64")),
    ]))
    .unwrap();
    assert_eq!(isolated.kind(), BuildKind::Isolated);
}

#[test]
fn whole_request() {
    let params = vec![
        Value::str("git://h/r#abc"),
        Value::str("t"),
        opts(vec![branch()]),
    ];
    let (src, target, o) = BuildOpts::from_params(&params).unwrap();
    assert_eq!((src.as_str(), target.as_str()), ("git://h/r#abc", "t"));
    assert_eq!(o.git_branch, "main");
    // The shallowest error wins: the target's type over an opts member's type.
    let params = vec![
        Value::str("git://h/r#abc"),
        Value::Int(3),
        opts(vec![("scratch", 1.into())]),
    ];
    assert_eq!(
        BuildOpts::from_params(&params).unwrap_err().message,
        "jsonschema.exceptions.ValidationError: 3 is not of type 'string'\n\nFailed validating 'type' in schema['items'][1]\n\nOn instance[1]:\n    3"
    );
    assert_eq!(
        BuildOpts::from_params(&params[..2]).unwrap_err().code,
        1,
        "opts=None is not an object"
    );
    assert_eq!(
        BuildOpts::from_params(&params[..1]).unwrap_err().message,
        "TypeError: handler() missing 1 required positional argument: 'target'"
    );
}

// --- container.yaml and arches --------------------------------------------------------------

#[test]
fn container_yaml_keys() {
    let cy = ContainerYaml::parse(
        "platforms:\n  only: [x86_64, aarch64]\n  not: aarch64\ntags:\n  - stable\n  - \"{version}\"\n  - v1.0-beta\nbuildtime_limit: 900\nset_release_env: RELEASE\nversion: 1\n",
    )
    .unwrap();
    assert_eq!(cy.platforms_only, ["x86_64", "aarch64"]);
    assert_eq!(cy.platforms_not, ["aarch64"]);
    assert_eq!(cy.buildtime_limit, 900);
    assert_eq!(cy.set_release_env.as_deref(), Some("RELEASE"));
    assert!(cy.tags_from_yaml());
    let (tags, log) = cy.additional_tags();
    assert_eq!(tags, ["stable"]);
    assert_eq!(
        log,
        [
            "Invalid additional tag \"{version}\", must match pattern ^[\\w.]{0,127}$",
            "Invalid additional tag \"v1.0-beta\", must match pattern ^[\\w.]{0,127}$"
        ]
    );
    assert_eq!(cy.buildtime_limit(3600, 7200).unwrap(), 900);
    assert_eq!(
        ContainerYaml::default()
            .buildtime_limit(3600, 7200)
            .unwrap(),
        3600
    );
    assert_eq!(
        ContainerYaml::parse("buildtime_limit: 9000\n")
            .unwrap()
            .buildtime_limit(3600, 7200)
            .unwrap_err(),
        fault(
            2001,
            "Build limit cannot be more than 7200 and is set to 9000"
        )
    );
    assert_eq!(ContainerYaml::parse("").unwrap(), ContainerYaml::default());
    let cy =
        ContainerYaml::parse("autorebuild: {from_latest: true}\nimage_build_method: buildah_bud\n")
            .unwrap();
    assert_eq!(
        cy.user_warnings,
        [
            "'autorebuild' config is deprecated in OSBS 2.0, this config will be ignored",
            "'image_build_method' config is deprecated in OSBS 2.0, this config will be ignored"
        ]
    );
}

#[test]
fn container_yaml_errors() {
    let prefix = "Failed to load or validate container file \"container.yaml\": ";
    for (text, reason) in [
        (
            "platforms:\n  only: x86_64\nplatfroms: {}\n",
            "at top level: validating 'anyOf' has failed (Additional properties are not allowed ('platfroms' was unexpected))",
        ),
        (
            "platforms:\n  only: x86_64\n  nto: [s390x]\n",
            "at top level: validating 'anyOf' has failed (Additional properties are not allowed ('nto' was unexpected))",
        ),
        (
            "tags: stable\n",
            "at top level: validating 'anyOf' has failed ('stable' is not of type 'array')",
        ),
        (
            "buildtime_limit: -5\nplatforms: {only: 5}\n",
            "at top level: validating 'anyOf' has failed (5 is not valid under any of the given schemas, -5 is less than the minimum of 0)",
        ),
        (
            "image_build_method: docker\n",
            "at top level: validating 'anyOf' has failed ('docker' is not one of ['docker_api', 'imagebuilder', 'buildah_bud'])",
        ),
        (
            "- a\n- b\n",
            "at top level: validating 'type' has failed (['a', 'b'] is not of type 'object', 'null')",
        ),
    ] {
        assert_eq!(
            ContainerYaml::parse(text).unwrap_err(),
            fault(2001, &format!("{prefix}{reason}")),
            "{text}"
        );
    }
    let e = ContainerYaml::parse("tags: [\n").unwrap_err();
    assert_eq!(e.code, 2001);
    assert!(e.message.starts_with(prefix), "{e}");
    // Keys that need services this build service does not have.
    assert_eq!(
        ContainerYaml::parse("compose:\n  packages: [httpd]\n").unwrap_err(),
        fault(
            2001,
            "Unsupported container.yaml key 'compose': this build service has no ODCS to create composes; use yum_repourls"
        )
    );
    assert_eq!(
        ContainerYaml::parse("remote_sources: [{name: a}]\n")
            .unwrap_err()
            .message,
        "Unsupported container.yaml key 'remote_sources': this build service has no Cachito or Hermeto to fetch remote sources"
    );
    assert!(ContainerYaml::parse("compose: ~\nflatpak: {}\n").is_ok());
}

#[test]
fn container_yaml_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        ContainerYaml::load(dir.path()).unwrap(),
        ContainerYaml::default()
    );
    std::fs::write(dir.path().join("container.yml"), "tags: [a]\n").unwrap();
    assert_eq!(
        ContainerYaml::load(dir.path()).unwrap_err(),
        fault(
            2001,
            "Repo contains wrong filename: container.yml, expected: container.yaml"
        )
    );
    std::fs::write(dir.path().join("container.yaml"), "tags: [a]\n").unwrap();
    assert_eq!(
        ContainerYaml::load(dir.path()).unwrap_err().message,
        "This repo contains both container.yaml and container.yml Please remove container.yml"
    );
    std::fs::remove_file(dir.path().join("container.yml")).unwrap();
    assert_eq!(
        ContainerYaml::load(dir.path()).unwrap().tags,
        Some(vec!["a".to_string()])
    );
}

fn arches(
    tag_arches: &str,
    over: Option<&[&str]>,
    kind: BuildKind,
    yaml: &str,
) -> Result<Vec<String>, Fault> {
    let over: Option<Vec<String>> = over.map(|o| o.iter().map(|s| s.to_string()).collect());
    let cy = ContainerYaml::parse(yaml).unwrap();
    let tag = BuildTag {
        name: "f40-build",
        id: 7,
        arches: tag_arches,
    };
    arch_list(tag, over.as_deref(), kind, &cy).map(|a: ArchList| a.arches)
}

#[test]
fn arch_lists() {
    use BuildKind::*;
    assert_eq!(
        arches("x86_64 aarch64", None, Normal, "").unwrap(),
        ["x86_64", "aarch64"]
    );
    assert_eq!(
        arches(
            "x86_64 aarch64 s390x",
            None,
            Normal,
            "platforms: {only: [s390x, x86_64], not: s390x}"
        )
        .unwrap(),
        ["x86_64"]
    );
    assert_eq!(
        arches("x86_64", None, Normal, "platforms: {not: x86_64}").unwrap_err(),
        fault(2001, "Image build failed. No platforms to build for")
    );
    assert_eq!(
        arches("", None, Normal, "").unwrap_err(),
        fault(1005, "No arches for tag f40-build [7]")
    );
    // arch_override: scratch/isolated only, filtered by the tag's canonical arches, and (when
    // it differs from the tag) used as is, sorted, without container.yaml's limits.
    assert_eq!(
        arches(
            "x86_64 aarch64",
            Some(&["x86_64", "ppc64le", "i686"]),
            Scratch,
            "platforms: {not: x86_64}"
        )
        .unwrap(),
        ["x86_64"]
    );
    assert_eq!(
        arches(
            "x86_64 aarch64 i386",
            Some(&["i686", "aarch64"]),
            Isolated,
            ""
        )
        .unwrap(),
        ["aarch64", "i686"]
    );
    assert_eq!(
        arches(
            "x86_64 aarch64",
            Some(&["aarch64", "x86_64"]),
            Scratch,
            "platforms: {not: aarch64}"
        )
        .unwrap(),
        ["x86_64"]
    );
    assert_eq!(
        arches("x86_64", Some(&["ppc64le"]), Scratch, "").unwrap_err(),
        fault(1005, "No matching arches were found")
    );
    // A blank override (`"  "`) matches nothing, as in the plugin.
    assert_eq!(
        arches("x86_64", Some(&[]), Scratch, "").unwrap_err(),
        fault(1005, "No matching arches were found")
    );
    assert_eq!(
        arches("x86_64", Some(&["x86_64"]), Normal, "").unwrap_err(),
        fault(
            1005,
            "arch-override is only allowed for isolated or scratch builds"
        )
    );
}

#[test]
fn dockerfile_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        Dockerfile::load(dir.path()).unwrap_err(),
        fault(
            1005,
            &format!(
                "Dockerfile file missing: {}/Dockerfile",
                dir.path().display()
            )
        )
    );
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "FROM x\nLABEL secret=1\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("Dockerfile")).unwrap();
    assert_eq!(
        Dockerfile::load(dir.path()).unwrap_err().message,
        "Cannot read Dockerfile: Dockerfile is a symlink out of the repository"
    );
    std::fs::remove_file(dir.path().join("Dockerfile")).unwrap();
    std::fs::write(dir.path().join("real"), "FROM x\nLABEL a=1\n").unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("Dockerfile")).unwrap();
    assert_eq!(
        Dockerfile::load(dir.path()).unwrap().labels().unwrap()["a"],
        "1"
    );
}

#[test]
fn expansion_is_bounded() {
    let mut text = String::from("FROM x\nENV A=0123456789abcdef\n");
    for _ in 0..20 {
        text.push_str("ENV A=$A$A\n");
    }
    let e = Dockerfile::parse(&text).unwrap().labels().unwrap_err();
    assert_eq!(
        e.message,
        "Cannot parse Dockerfile: line 19: variable expansion longer than 1048576 bytes"
    );
}
