//! Hostile input at the hub's and the builder's edges: request limits over raw HTTP, upload
//! names and planted symlinks, image tars with paths and links that leave their root, and git
//! sources that try to inject options or reach local repositories.
//!
//! Every test starts its own processes (hub, git daemon) on free ports and stops them by pid.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Hub, call_xml, fault_code, fault_string};

/// An answer must be HTTP 200 with a fault of `code` whose text contains `text`.
fn expect_fault(resp: &(u16, Vec<(String, String)>, String), code: i64, text: &str, what: &str) {
    let (status, _, body) = resp;
    assert_eq!(*status, 200, "{what}: HTTP status; body: {body}");
    assert_eq!(fault_code(body), Some(code), "{what}: {body}");
    let s = fault_string(body).unwrap_or_default();
    assert!(s.contains(text), "{what}: expected {text:?} in {s:?}");
}

fn expect_ok(resp: &(u16, Vec<(String, String)>, String), what: &str) {
    let (status, _, body) = resp;
    assert_eq!(*status, 200, "{what}: HTTP status");
    assert!(
        fault_code(body).is_none(),
        "{what}: unexpected fault {:?}",
        fault_string(body)
    );
}

fn echo_with(value: &str) -> String {
    call_xml("echo", &[value])
}

fn array_of(n: usize) -> String {
    format!(
        "<array><data>{}</data></array>",
        "<value><int>1</int></value>".repeat(n)
    )
}

fn struct_of(n: usize) -> String {
    let mut s = String::from("<struct>");
    for i in 0..n {
        s.push_str(&format!("<member><name>m{i}</name><value/></member>"));
    }
    s.push_str("</struct>");
    s
}

fn multicall_of(n: usize) -> String {
    let one = "<value><struct><member><name>methodName</name><value><string>echo</string></value>\
               </member><member><name>params</name><value><array><data><value><int>7</int>\
               </value></data></array></value></member></struct></value>";
    call_xml(
        "multiCall",
        &[&format!("<array><data>{}</data></array>", one.repeat(n))],
    )
}

/// Each request limit of `plugin-spec/wire.md` over raw HTTP: the largest legal request passes,
/// one more item/member/byte/call gets the documented fault, and the hub keeps answering.
#[test]
fn request_limits_over_raw_http() {
    // A body limit above the string limit, so the string limit is what refuses.
    let hub = hub!("max_request_length = 41943040\n");
    let alive = |hub: &Hub| {
        expect_ok(
            &hub.raw_call(&echo_with("<int>1</int>")),
            "hub still answers",
        )
    };

    // Nesting depth: 64 levels of arrays inside the parameter pass, 65 do not.
    let nest = |n: usize| {
        format!(
            "{}<int>1</int>{}",
            "<array><data><value>".repeat(n),
            "</value></data></array>".repeat(n)
        )
    };
    expect_ok(&hub.raw_call(&echo_with(&nest(64))), "64 levels");
    expect_fault(
        &hub.raw_call(&echo_with(&nest(65))),
        1000,
        "Invalid request: values nested deeper than 64 levels, the hub's nesting depth limit",
        "65 levels",
    );

    // Array length.
    let r = hub.raw_call(&echo_with(&array_of(100_000)));
    expect_ok(&r, "array of 100000");
    assert_eq!(
        r.2.matches("<int>1</int>").count(),
        100_000,
        "echo returns every item"
    );
    expect_fault(
        &hub.raw_call(&echo_with(&array_of(100_001))),
        1000,
        "Invalid request: an array has more than 100000 items, the hub's array length limit",
        "array of 100001",
    );

    // Struct members.
    expect_ok(
        &hub.raw_call(&echo_with(&struct_of(1_000))),
        "struct of 1000",
    );
    expect_fault(
        &hub.raw_call(&echo_with(&struct_of(1_001))),
        1000,
        "Invalid request: a struct has more than 1000 members, the hub's struct member limit",
        "struct of 1001",
    );

    // String length, for values and member names alike (16 MiB).
    let max = 16 * 1024 * 1024;
    let s = "x".repeat(max);
    let r = hub.raw_call(&echo_with(&format!("<string>{s}</string>")));
    expect_ok(&r, "string of 16 MiB");
    assert!(r.2.contains(&s), "echo returns the whole string");
    let s = "x".repeat(max + 1);
    expect_fault(
        &hub.raw_call(&echo_with(&format!("<string>{s}</string>"))),
        1000,
        "Invalid request: a string of 16777217 bytes exceeds the hub's string length limit of \
         16777216 bytes",
        "string of 16 MiB + 1",
    );
    expect_fault(
        &hub.raw_call(&echo_with(&format!(
            "<struct><member><name>{s}</name><value/></member></struct>"
        ))),
        1000,
        "exceeds the hub's string length limit",
        "member name of 16 MiB + 1",
    );
    drop(s);

    // multiCall length: the koji CLI's largest batch (10000) passes, 10001 is ParameterError.
    let r = hub.raw_call(&multicall_of(10_000));
    expect_ok(&r, "multiCall of 10000");
    assert_eq!(
        r.2.matches("<int>7</int>").count(),
        10_000,
        "one answer per call"
    );
    expect_fault(
        &hub.raw_call(&multicall_of(10_001)),
        1019,
        "multiCall of 10001 calls exceeds the hub's multicall length limit of 10000 calls",
        "multiCall of 10001",
    );

    // The body limit itself.
    let big = echo_with(&format!("<string>{}</string>", "y".repeat(41_943_040)));
    expect_fault(
        &hub.raw_call(&big),
        1000,
        "Request too long",
        "body over max_request_length",
    );
    alive(&hub);
}

/// The most expensive request the limits allow to parse: a 4 MiB body (the default
/// `max_request_length`) of structs at the member limit, every name distinct (struct inserts
/// compare with every member so far, n²/2 per struct): about 5·10⁷ comparisons in all.
#[test]
fn worst_case_struct_flood_is_cheap() {
    let hub = hub!();
    let one = struct_of(1_000);
    let mut params = Vec::new();
    let mut len = 0;
    while len + one.len() + 40 < 4 * 1024 * 1024 - 4096 {
        len += one.len() + 40;
        params.push(one.as_str());
    }
    let body = call_xml("echo", &params);
    assert!(body.len() <= 4 * 1024 * 1024, "{}", body.len());
    let started = Instant::now();
    let r = hub.raw_call(&body);
    let took = started.elapsed();
    expect_ok(&r, "struct flood");
    eprintln!(
        "struct flood: {} structs of 1000 members, {} bytes, answered in {took:?}",
        params.len(),
        body.len()
    );
    // Generous for a loaded 2-core machine: what it catches is the quadratic blow-up of
    // unlimited structs (one 100,000-member struct is 5·10⁹ name comparisons, minutes).
    assert!(took < Duration::from_secs(30), "struct flood took {took:?}");
}

/// Python helpers for the upload test: sessions, a raw `rawUpload` POST, `expect_fault`.
const UPLOAD_PRELUDE: &str = r#"
import base64, hashlib, os, sqlite3, sys, time, urllib.parse, zlib
import requests
import koji
from koji import xmlrpcplus

URL = os.environ['KOJI_URL']

def login(name, pw, exclusive=False):
    s = koji.ClientSession(URL, {'user': name, 'password': pw, 'max_retries': 0})
    s.login()
    if exclusive:
        s.exclusiveSession()
    return s

def raw(sess, body, path, name, offset=0, overwrite=True, query=None):
    q = query or 'filename=%s&filepath=%s&fileverify=adler32&offset=%d%s' % (
        urllib.parse.quote(name, safe=''), urllib.parse.quote(path, safe=''), offset,
        '&overwrite=1' if overwrite else '')
    hdrs = {'Koji-Session-Id': str(sess.sinfo['session-id']),
            'Koji-Session-Key': sess.sinfo['session-key'],
            'Koji-Session-Callnum': str(sess.callnum),
            'Content-Type': 'application/octet-stream'}
    sess.callnum += 1
    r = requests.post(URL + '?' + q, data=body, headers=hdrs)
    assert r.status_code == 200, (r.status_code, r.text)
    try:
        return xmlrpcplus.loads(r.text)[0][0]
    except xmlrpcplus.Fault as f:
        return f

def is_fault(r, text):
    assert isinstance(r, xmlrpcplus.Fault), 'expected a fault with %r, got %r' % (text, r)
    assert r.faultCode == 1000 and text in r.faultString, (text, r.faultCode, r.faultString)

def call_fault(text, fn, *a):
    try:
        r = fn(*a)
    except koji.GenericError as e:
        assert text in str(e), (text, str(e))
        return
    raise AssertionError('no fault %r, got %r' % (text, r))

def upload_file(sess, path, name, data, offset=0):
    return sess.uploadFile(path, name, len(data), hashlib.md5(data).hexdigest(), offset,
                           base64.b64encode(data).decode())
"#;

/// Upload names and planted symlinks, for `rawUpload`, `uploadFile` and `checkUpload`: names
/// with `..`, `/`, `\`, NUL or a leading dot, absolute and climbing directories; a symlinked
/// directory component and a symlinked destination file in a user's upload directory and in a
/// task's directory. Every case is a GenericError naming the problem; nothing outside the
/// topdir is created, changed or read (its size and digest never come back).
#[test]
fn upload_names_and_planted_symlinks() {
    let hub = hub!("scheduler_interval = 1\n");
    let host_pw = hub.add_host_cli("hostile.test");
    let work = hub.data_dir().join("topdir").join("work");
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("target.txt");
    std::fs::write(&target, b"outside secret\n").expect("write target");
    let db = hub.data_dir().join("containerbuild.sqlite");
    let script = format!(
        r#"{UPLOAD_PRELUDE}
WORK = {work:?}
OUT = {out:?}
adm = login(os.environ['KOJI_USER'], os.environ['KOJI_PASSWORD'])

# Names and directories, for each of the three methods.
bad = [('up/a', '../f.txt', 'Invalid upload filename'),
       ('up/a', '/etc/passwd', 'Invalid upload filename'),
       ('up/a', '..', 'Invalid upload filename'),
       ('up/a', '.user', 'Invalid upload filename'),
       ('up/a', 'a\\b', 'Invalid upload filename'),
       ('up/a', 'a/b', 'Invalid upload filename'),
       ('/tmp', 'f.txt', 'Invalid upload directory'),
       ('up/../../..', 'f.txt', 'Invalid upload directory'),
       ('..', 'f.txt', 'Invalid upload directory'),
       ('up\\..\\..', 'f.txt', 'Invalid upload directory')]
for path, name, text in bad:
    is_fault(raw(adm, b'x', path, name), text)
    call_fault(text, upload_file, adm, path, name, b'x')
    call_fault(text, adm.checkUpload, path, name)
# NUL only fits in a query string (XML cannot carry it).
is_fault(raw(adm, b'x', '', '', query='filename=f%00.txt&filepath=up/a&fileverify=&offset=0'),
         'Invalid upload filename')
is_fault(raw(adm, b'x', '', '', query='filename=f.txt&filepath=up/a%00/b&fileverify=&offset=0'),
         'Invalid upload directory')

# A real upload directory of this user, then symlinks planted in it.
r = raw(adm, b'first', 'up/a', 'ok.txt')
assert r['size'] == 5, r
assert open(os.path.join(WORK, 'up/a/ok.txt'), 'rb').read() == b'first'
os.symlink(OUT, os.path.join(WORK, 'up/a/linkdir'))
os.symlink(os.path.join(OUT, 'target.txt'), os.path.join(WORK, 'up/a/evil.txt'))
os.symlink(OUT, os.path.join(WORK, 'up/linkparent'))
for path in ['up/a/linkdir', 'up/linkparent', 'up/linkparent/deeper']:
    is_fault(raw(adm, b'planted', path, 'new.txt'), 'is a symlink')
    call_fault('is a symlink', upload_file, adm, path, 'new.txt', b'planted')
    call_fault('is a symlink', adm.checkUpload, path, 'target.txt', 'adler32')
for offset in [0, -1, 3]:
    is_fault(raw(adm, b'planted', 'up/a', 'evil.txt', offset=offset), 'destination is a symlink')
call_fault('destination is a symlink', upload_file, adm, 'up/a', 'evil.txt', b'planted')
call_fault('Not a regular file', adm.checkUpload, 'up/a', 'evil.txt', 'adler32')

# The same in a task's directory, written by the host running the task.
db = sqlite3.connect({db:?}, timeout=30)
owner = db.execute("SELECT id FROM users WHERE name = 'kojiadmin'").fetchone()[0]
chan = db.execute("SELECT id FROM channels WHERE name = 'default'").fetchone()[0]
req = xmlrpcplus.dumps((1,), methodname='sleep')
tid = db.execute("INSERT INTO tasks (state, create_ts, channel_id, owner, method, arch, priority,"
                 " request) VALUES (0, ?, ?, ?, 'sleep', 'noarch', 20, ?)",
                 (time.time(), chan, owner, req)).lastrowid
db.commit()
db.close()
h = login('hostile.test', {host_pw:?}, exclusive=True)
h.host.updateHost(0.0, True)
for _ in range(200):
    if [t['id'] for t in h.host.getTasks()] == [tid]:
        break
    time.sleep(0.1)
h.host.openTask(tid)
D = 'tasks/%d/%d' % (tid % 10000, tid)
r = raw(h, b'log line\n', D, 'task.log')
assert r['size'] == 9, r
tdir = os.path.join(WORK, D)
os.symlink(OUT, os.path.join(tdir, 'sub'))
os.symlink(os.path.join(OUT, 'target.txt'), os.path.join(tdir, 'out.log'))
is_fault(raw(h, b'planted', D + '/sub', 'x.log'), 'is a symlink')
call_fault('is a symlink', upload_file, h, D + '/sub', 'x.log', b'planted')
is_fault(raw(h, b'planted', D, 'out.log', offset=-1), 'destination is a symlink')
call_fault('destination is a symlink', upload_file, h, D, 'out.log', b'planted', -1)
call_fault('Not a regular file', h.checkUpload, D, 'out.log', 'adler32')
print('upload cases refused')
"#,
        work = work.to_str().expect("utf-8"),
        out = outside.path().to_str().expect("utf-8"),
        db = db.to_str().expect("utf-8"),
    );
    let out = hub.python_ok(&script);
    assert!(out.contains("upload cases refused"), "{out}");
    // Nothing outside was created or changed.
    let mut names: Vec<String> = std::fs::read_dir(outside.path())
        .expect("read outside")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["target.txt"], "files appeared outside the topdir");
    assert_eq!(
        std::fs::read(&target).expect("read target"),
        b"outside secret\n",
        "the symlink target was written"
    );
}

// ---------------------------------------------------------------------------------------------
// Image tars

/// One tar entry with its name and link name written as raw bytes: the `tar` crate's own
/// setters refuse `..` and absolute paths, which is exactly what these tests need to write.
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().expect("gnu header");
        assert!(
            path.len() < 100 && link.len() < 100,
            "{path} / {link}: too long for a header"
        );
        g.name[..path.len()].copy_from_slice(path.as_bytes());
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    if kind == tar::EntryType::Char {
        // /dev/zero: reading it never ends.
        h.set_device_major(1).expect("major");
        h.set_device_minor(5).expect("minor");
    }
    h.set_cksum();
    b.append(&h, data).expect("append");
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A docker-archive of plain layer tars, with a config that lists their diff_ids.
fn docker_archive(layers: &[Vec<u8>], manifest_layers: Option<Vec<String>>) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|t| format!("sha256:{}", sha256_hex(t)))
        .collect();
    let history: Vec<serde_json::Value> = (0..layers.len())
        .map(|i| serde_json::json!({"created_by": format!("layer {i}")}))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .expect("config json");
    let config_name = format!("{}.json", sha256_hex(&config));
    let names: Vec<String> = layers
        .iter()
        .map(|t| format!("{}.tar", sha256_hex(t)))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["localhost/hostile:1"],
        "Layers": manifest_layers.unwrap_or_else(|| names.clone()),
    }]))
    .expect("manifest json");
    let mut b = tar::Builder::new(Vec::new());
    for (t, n) in layers.iter().zip(&names) {
        raw_entry(&mut b, tar::EntryType::Regular, n, "", t);
    }
    raw_entry(&mut b, tar::EntryType::Regular, &config_name, "", &config);
    raw_entry(
        &mut b,
        tar::EntryType::Regular,
        "manifest.json",
        "",
        &manifest,
    );
    b.into_inner().expect("archive")
}

/// `containerbuild rpm-manifest ARCHIVE --layers` with a time limit (a FIFO or device read
/// would hang): exit status, stdout JSON (if any), stderr.
fn rpm_manifest(archive: &Path) -> (Option<i32>, Option<serde_json::Value>, String) {
    // Output to files: a pipe read only after exit would fill up and block the child.
    let out_path = archive.with_extension("out");
    let err_path = archive.with_extension("err");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_containerbuild"))
        .arg("rpm-manifest")
        .arg(archive)
        .arg("--layers")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create stderr file"))
        .spawn()
        .expect("spawn containerbuild");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rpm-manifest {} hung", archive.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        serde_json::from_slice(&std::fs::read(&out_path).unwrap_or_default()).ok(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

fn component_count(r: &serde_json::Value) -> usize {
    r["components"].as_array().map_or(0, Vec::len)
}

fn layer_warnings(r: &serde_json::Value) -> String {
    r["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["warnings"].as_array().into_iter().flatten())
        .filter_map(|w| w.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Image layers with entries that leave the root (`../`, absolute paths), absolute and climbing
/// symlinks and hard links at the rpmdb's place that point at a real rpmdb on this machine,
/// a symlinked database directory with the database written "through" it, and device nodes and
/// FIFOs where the database should be — fed through `containerbuild rpm-manifest --layers`
/// (the library the builder runs on every image it built). The host's rpmdb is never read (the
/// answer would list its packages), nothing is created outside, devices are never opened.
#[test]
fn image_tars_that_leave_the_root() {
    let fixture = common::repo_dir().join("../shared/fixtures/rpmdb/cbl-mariner-2.0");
    if !fixture.join("rpmdb.sqlite").is_file() {
        eprintln!("skipping: {} is absent", fixture.display());
        assert!(
            std::env::var_os("CI").is_none(),
            "the rpmdb fixture is required under CI"
        );
        return;
    }
    let db = std::fs::read(fixture.join("rpmdb.sqlite")).expect("read rpmdb");
    let dir = tempfile::tempdir().expect("tempdir");
    // The "host": a real database the image's links point at, and an empty directory that
    // writes through links would land in.
    let host = dir.path().join("host");
    let hostdb = host.join("secretdb");
    let target = host.join("target");
    std::fs::create_dir_all(&hostdb).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(hostdb.join("rpmdb.sqlite"), &db).expect("write host db");
    let hostdb_s = hostdb.to_str().expect("utf-8").to_owned();
    let target_s = target.to_str().expect("utf-8").to_owned();
    let climb = "../".repeat(16);
    use tar::EntryType::{Char, Directory, Fifo, Link, Regular, Symlink};

    let layer = |entries: &[(tar::EntryType, String, String, &[u8])]| {
        let mut b = tar::Builder::new(Vec::new());
        for (k, p, l, d) in entries {
            raw_entry(&mut b, *k, p, l, d);
        }
        b.into_inner().expect("layer")
    };
    let run = |name: &str, layers: &[Vec<u8>]| {
        let p = dir.path().join(format!("{name}.tar"));
        std::fs::write(&p, docker_archive(layers, None)).expect("write archive");
        let (code, json, err) = rpm_manifest(&p);
        eprintln!("{name}: exit {code:?}, {err}");
        (code, json, err)
    };
    let n_packages = {
        // Control: the database in the image is read, so a followed link would show.
        let l = layer(&[(
            Regular,
            "var/lib/rpm/rpmdb.sqlite".into(),
            String::new(),
            &db,
        )]);
        let (code, r, err) = run("control", &[l]);
        assert_eq!(code, Some(0), "{err}");
        let n = component_count(&r.expect("json"));
        assert!(n > 10, "control image lists {n} packages");
        n
    };

    // Absolute and climbing symlinks at both database directories, pointing at the host's db.
    for (what, link) in [
        ("absolute symlink", hostdb_s.clone()),
        (
            "climbing symlink",
            format!("{climb}{}", hostdb_s.trim_start_matches('/')),
        ),
    ] {
        for at in ["var/lib/rpm", "usr/lib/sysimage/rpm"] {
            let l = layer(&[
                (Directory, "var/".into(), String::new(), b""),
                (Symlink, at.into(), link.clone(), b""),
            ]);
            let (code, r, err) = run("symlink", &[l]);
            assert_eq!(code, Some(0), "{what} at {at}: {err}");
            assert_eq!(
                component_count(&r.expect("json")),
                0,
                "{what} at {at}: host db read"
            );
        }
    }

    // Hard links to the host's database file: absolute (an image path, which does not exist)
    // and climbing out (skipped with a warning).
    let l = layer(&[
        (
            Link,
            "var/lib/rpm/rpmdb.sqlite".into(),
            format!("{hostdb_s}/rpmdb.sqlite"),
            b"",
        ),
        (
            Link,
            "usr/lib/sysimage/rpm/rpmdb.sqlite".into(),
            format!("{climb}{}/rpmdb.sqlite", hostdb_s.trim_start_matches('/')),
            b"",
        ),
    ]);
    let (code, r, err) = run("hardlinks", &[l]);
    assert_eq!(code, Some(0), "{err}");
    let r = r.expect("json");
    assert_eq!(component_count(&r), 0, "hard link read the host db");
    assert!(layer_warnings(&r).contains("skipped hard link"), "{r}");

    // Entries that climb out, absolute entries, and a database written through a symlinked
    // directory that points at the host's empty directory: the image's answer (its database
    // lives at that path inside the image), and nothing lands on the host.
    let l = layer(&[
        (
            Regular,
            format!("{climb}{}/climb.txt", target_s.trim_start_matches('/')),
            String::new(),
            b"x",
        ),
        (
            Regular,
            format!(
                "var/lib/rpm/{climb}{}/climb2.txt",
                target_s.trim_start_matches('/')
            ),
            String::new(),
            b"x",
        ),
        (
            Regular,
            format!("{target_s}/absolute.txt"),
            String::new(),
            b"x",
        ),
        (Directory, "var/lib/".into(), String::new(), b""),
        (Symlink, "var/lib/rpm".into(), target_s.clone(), b""),
        (
            Regular,
            "var/lib/rpm/rpmdb.sqlite".into(),
            String::new(),
            &db,
        ),
        (
            Symlink,
            "var/lib/rpm/rpmdb.sqlite-wal".into(),
            format!("{hostdb_s}/rpmdb.sqlite"),
            b"",
        ),
    ]);
    let (code, r, err) = run("through-symlink", &[l]);
    assert_eq!(code, Some(0), "{err}");
    let r = r.expect("json");
    assert_eq!(
        component_count(&r),
        n_packages,
        "the image's own database, via its symlink"
    );
    assert!(layer_warnings(&r).contains("leaves the root"), "{r}");

    // Device nodes and FIFOs where the databases should be: not opened (no hang), no packages.
    let l = layer(&[
        (Char, "var/lib/rpm/rpmdb.sqlite".into(), String::new(), b""),
        (
            Fifo,
            "usr/lib/sysimage/rpm/rpmdb.sqlite".into(),
            String::new(),
            b"",
        ),
        (
            Fifo,
            "usr/lib/sysimage/rpm/Packages".into(),
            String::new(),
            b"",
        ),
    ]);
    let (code, r, err) = run("devices", &[l]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(component_count(&r.expect("json")), 0);

    // A manifest naming layer members outside the archive: a clear error, nothing read.
    let l = layer(&[(Regular, "etc/motd".into(), String::new(), b"hi")]);
    for bad in [
        format!("{climb}{hostdb_s}/rpmdb.sqlite"),
        format!("{hostdb_s}/rpmdb.sqlite"),
    ] {
        let p = dir.path().join("bad-member.tar");
        std::fs::write(
            &p,
            docker_archive(std::slice::from_ref(&l), Some(vec![bad.clone()])),
        )
        .expect("write");
        let (code, _, err) = rpm_manifest(&p);
        assert_eq!(code, Some(1), "{bad}: {err}");
        assert!(err.contains("no member"), "{bad}: {err}");
    }

    assert_eq!(
        tree(&target),
        Vec::<String>::new(),
        "files were created outside the image"
    );
    assert_eq!(tree(&host), ["secretdb", "secretdb/rpmdb.sqlite", "target"]);
    assert_eq!(
        std::fs::read(hostdb.join("rpmdb.sqlite")).expect("read"),
        db,
        "host db changed"
    );
}

// ---------------------------------------------------------------------------------------------
// Git sources

/// git for building the test's repositories, without the user's or the system's configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(["-c", "protocol.file.allow=always"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Option injection through the URL, the revision and the transport, and submodules that
/// point at a local repository or at `ext::` commands, against a real `git daemon`: each is
/// refused with the fault the task would fail with (or, for submodules, the checkout succeeds
/// without them), and no injected command ran — each would have created its marker file.
#[test]
fn git_sources_cannot_inject_options_or_reach_local_repos() {
    use containerbuild::build::source::{AllowedScms, Git, ScmUrl};
    if common::fixtures::which("git").is_none() {
        eprintln!("skipping: no git");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = dir.path().join("srv");
    let work = dir.path().join("work");
    let marker_dir = dir.path().join("markers");
    for d in [&srv, &work, &marker_dir] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let marker = |n: &str| marker_dir.join(n);
    let m = |n: &str| marker(n).to_str().expect("utf-8").to_owned();

    // A local repository holding a secret, which submodules try to pull in.
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(&secret).expect("mkdir");
    git(&secret, &["init", "-q", "-b", "main"]);
    std::fs::write(secret.join("password.txt"), "hunter2\n").expect("write");
    git(&secret, &["add", "password.txt"]);
    git(&secret, &["commit", "-q", "-m", "secret"]);

    // The served repository: a Dockerfile and two submodules, file:// and ext::.
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("Dockerfile"), "FROM scratch\n").expect("write");
    git(&work, &["add", "Dockerfile"]);
    let secret_url = format!("file://{}", secret.display());
    git(&work, &["submodule", "add", "-q", &secret_url, "local"]);
    // A second gitlink whose URL is an ext:: command.
    let secret_head = git(&secret, &["rev-parse", "HEAD"]);
    git(
        &work,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{secret_head},extmod"),
        ],
    );
    std::fs::write(
        work.join(".gitmodules"),
        format!(
            "[submodule \"local\"]\n\tpath = local\n\turl = {secret_url}\n\
             [submodule \"extmod\"]\n\tpath = extmod\n\turl = ext::sh -c touch% {}\n",
            m("ext-submodule")
        ),
    )
    .expect("write .gitmodules");
    git(&work, &["add", ".gitmodules"]);
    git(&work, &["commit", "-q", "-m", "with submodules"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    git(
        &work,
        &[
            "clone",
            "-q",
            "--bare",
            ".",
            srv.join("repo.git").to_str().expect("utf-8"),
        ],
    );
    let server = common::fixtures::GitServer::start(&srv);
    let base = server.url("repo");

    let checkout = |url: &str, n: usize| -> Result<PathBuf, (i32, String)> {
        let scm = ScmUrl::parse(url, &AllowedScms::allow_all()).map_err(|e| {
            let f = e.fault();
            (f.code, f.message)
        })?;
        let dest = dir.path().join(format!("co-{n}"));
        let mut log = Vec::new();
        let r = Git::new()
            .timeout(Duration::from_secs(60))
            .checkout(&scm, &dest, &mut log);
        eprintln!("{url}:\n{}", String::from_utf8_lossy(&log));
        match r {
            Ok(c) => Ok(c.dir),
            Err(e) => {
                let f = e.fault();
                Err((f.code, f.message))
            }
        }
    };

    // The submodules are not fetched: the checkout has the commit, `local` stays empty.
    let co = checkout(&format!("{base}#{sha}"), 0).expect("plain checkout");
    assert!(co.join("Dockerfile").is_file());
    assert_eq!(
        tree(&co.join("local")),
        Vec::<String>::new(),
        "a submodule was fetched"
    );
    assert_eq!(
        tree(&co.join("extmod")),
        Vec::<String>::new(),
        "a submodule was fetched"
    );

    let hostile: Vec<(String, i32, &str)> = vec![
        // Revisions that look like options.
        (
            format!("{base}#--upload-pack=touch {}", m("rev-upload-pack")),
            1005,
            "Revision --upload-pack=",
        ),
        (
            format!("{base}#-c core.sshCommand=touch {}", m("rev-c")),
            1005,
            "not found",
        ),
        (
            format!("{base}#--output={}", m("rev-output")),
            1005,
            "not found",
        ),
        (
            format!("{base}#origin/--upload-pack=touch% {}", m("rev-origin")),
            1005,
            "not found",
        ),
        // Hosts and users that ssh would take as options.
        (
            format!(
                "git+ssh://-oProxyCommand=touch% {}/repo.git#main",
                m("ssh-host")
            ),
            1000,
            "must not start with '-'",
        ),
        (
            "git+ssh://-oProxyCommand=touch@h/repo.git#main".to_owned(),
            1000,
            "must not start with '-'",
        ),
        // Transports that run commands or read local files.
        (
            format!("ext::sh -c touch% {}#main", m("ext")),
            1000,
            "Invalid scheme in scm url",
        ),
        ("fd::0#main".to_owned(), 1000, "Invalid scheme in scm url"),
        (
            format!("file://{}#main", secret.display()),
            1000,
            "Invalid scheme in scm url",
        ),
        (
            format!("--upload-pack=touch {}#main", m("leading-dash")),
            1000,
            "Invalid scheme in scm url",
        ),
        (
            format!(
                "git://127.0.0.1:{}/--upload-pack=touch/repo.git#main",
                server.port
            ),
            1005,
            "Error running GIT command",
        ),
    ];
    for (i, (url, code, text)) in hostile.iter().enumerate() {
        match checkout(url, i + 1) {
            Ok(dir) => panic!("{url}: checked out into {}", dir.display()),
            Err((c, msg)) => {
                assert_eq!(c, *code, "{url}: {msg}");
                assert!(msg.contains(text), "{url}: expected {text:?} in {msg:?}");
            }
        }
    }
    assert_eq!(
        tree(&marker_dir),
        Vec::<String>::new(),
        "an injected command ran"
    );
}
