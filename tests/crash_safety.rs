//! Crash safety with real processes and real kills: the hub SIGKILLed while a koji client keeps
//! creating tasks, closing them as a host, uploading files and importing content-generator
//! builds; a builder SIGKILLed during a `buildah bud`; a registry that is down when a build
//! pushes; and the hub's data directory on a full tmpfs.
//!
//! What each test proves is said on the test. Every process a test starts is stopped by pid
//! (the `Hub`, `BuilderProc` and `TestRegistry` guards, and [`Workload`]'s `Drop`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::fixtures::{Fixtures, GitServer, TestRegistry, buildah_cmd, run_ok};
use common::{ADMIN, BuilderProc, Hub, assert_contains, build_env, task_state, wait_for};
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// 1. The hub killed during writes

/// The client side of the hub kills: one koji.ClientSession loop that runs, in turn, `makeTask`,
/// a host's `host.openTask` + `host.closeTask`, an `uploadWrapper` of a random file (checked
/// with `checkUpload`), and a `CGImport` of an image build. Every call the hub answered is
/// journaled (fsynced) before the next one; a call cut by the kill is journaled as `ERR` and the
/// loop logs in again until the hub is back. An upload cut by a kill is looked at with
/// `checkUpload` first (`PARTIAL ...`, with the size and md5 the hub has) and then sent again
/// with `overwrite=True`, as the koji client's `fast_upload` leaves it to its caller.
const WORKLOAD: &str = r#"
import hashlib, io, json, os, random, sys, tarfile, tempfile, time, traceback
import koji
from koji import xmlrpcplus

URL = os.environ['KOJI_URL']
JOURNAL = os.environ['JOURNAL']
STOP = os.environ['STOP_FILE']
HOST, HOST_PW = 'crash-host', os.environ['HOST_PW']
WORK = tempfile.mkdtemp()
CG = 'atomic-reactor'


def journal(line):
    with open(JOURNAL, 'a') as f:
        f.write(line + '\n')
        f.flush()
        os.fsync(f.fileno())


def connect():
    while not os.path.exists(STOP):
        try:
            adm = koji.ClientSession(URL, {'user': os.environ['KOJI_USER'],
                                           'password': os.environ['KOJI_PASSWORD'],
                                           'max_retries': 0})
            adm.login()
            h = koji.ClientSession(URL, {'user': HOST, 'password': HOST_PW, 'max_retries': 0})
            h.login()
            h.exclusiveSession(force=True)
            return adm, h
        except Exception:
            time.sleep(0.1)
    sys.exit(0)


def make_task(adm, h):
    tid = adm.makeTask('sleep', [1])
    journal('TASK %d' % tid)


def close_task(adm, h):
    hid = h.host.getID()
    h.host.updateHost(0.0, True)
    # Tasks a kill left OPEN on this host first, then one the scheduler assigned.
    ids = [t['id'] for t in adm.listTasks(opts={'state': [1], 'host_id': hid, 'method': 'sleep'})]
    if not ids:
        ids = [t['id'] for t in h.host.getTasks() if t['state'] == 4][:1]
        ids = [i for i in ids if h.host.openTask(i) is not None]
    for tid in ids:
        h.host.closeTask(tid, xmlrpcplus.dumps(('done %d' % tid,), methodresponse=1,
                                                allow_none=1))
        journal('CLOSED %d' % tid)


N = [0]
PENDING = []


def upload(adm, h):
    if PENDING:
        # An upload a kill cut: what the hub holds, then the whole file again.
        path, name, fn, size, md5 = PENDING[0]
        info = adm.checkUpload(path, name, verify='md5')
        if info is not None:
            journal('PARTIAL %s/%s %d %s %d %s' % (path, name, size, md5, info['size'],
                                                  info.get('hexdigest', '-')))
        adm.uploadWrapper(fn, path, name=name, blocksize=65536, overwrite=True)
        PENDING.pop()
    else:
        N[0] += 1
        size = random.randint(256 << 10, 2 << 20)
        data = os.urandom(size)
        name = 'blob-%d.bin' % N[0]
        fn = os.path.join(WORK, name)
        with open(fn, 'wb') as f:
            f.write(data)
        path = 'crash/%d' % N[0]
        md5 = hashlib.md5(data).hexdigest()
        PENDING.append((path, name, fn, size, md5))
        adm.uploadWrapper(fn, path, name=name, blocksize=65536)
        PENDING.pop()
    info = adm.checkUpload(path, name, verify='md5')
    assert info['size'] == size and info['hexdigest'] == md5, (info, size, md5)
    journal('UPLOAD %s/%s %d %s' % (path, name, size, md5))


def cg_import(adm, h):
    N[0] += 1
    rel = '%d' % N[0]
    text = os.urandom(4096)
    digest = hashlib.sha256(text).hexdigest()
    image = os.path.join(WORK, 'docker-image-%s.x86_64.tar.gz' % digest)
    with tarfile.open(image, 'w:gz') as t:
        info = tarfile.TarInfo('blob')
        info.size = len(text)
        t.addfile(info, io.BytesIO(text))
    data = open(image, 'rb').read()
    comps = [{'type': 'rpm', 'name': 'bash', 'version': '5.2', 'release': rel, 'arch': 'x86_64',
              'sigmd5': '00' * 16, 'signature': None, 'epoch': None},
             {'type': 'rpm', 'name': 'glibc', 'version': '2.39', 'release': rel,
              'arch': 'x86_64', 'sigmd5': '11' * 16, 'signature': None, 'epoch': None}]
    out = {'buildroot_id': 'br', 'filename': os.path.basename(image), 'filesize': len(data),
           'checksum': hashlib.md5(data).hexdigest(), 'checksum_type': 'md5',
           'arch': 'x86_64', 'type': 'docker-image', 'components': comps,
           'extra': {'image': {'arch': 'x86_64'},
                     'docker': {'id': 'sha256:' + digest, 'parent_id': None,
                                'repositories': [], 'layer_sizes': [], 'tags': [],
                                'config': {'architecture': 'amd64', 'os': 'linux'},
                                'digests': {}}}}
    md = {'metadata_version': 0,
          'build': {'name': 'crash-image', 'version': '1', 'release': rel,
                    'source': 'git://git.example.test/crash#0123456789abcdef',
                    'start_time': 1700000000, 'end_time': 1700000300, 'owner': 'kojiadmin',
                    'extra': {'image': {'isolated': False},
                              'osbs_build': {'kind': 'container_build', 'engine': 'buildah',
                                             'subtypes': []}}},
          'buildroots': [{'id': 'br', 'host': {'os': None, 'arch': 'x86_64'},
                          'content_generator': {'name': CG, 'version': '0.1.0'},
                          'container': {'type': 'none', 'arch': 'x86_64'},
                          'components': [], 'tools': []}],
          'output': [out]}
    serverdir = 'crash-cg/%d' % N[0]
    adm.uploadWrapper(image, serverdir, blocksize=65536)
    mdpath = os.path.join(WORK, 'metadata.json')
    with open(mdpath, 'w') as f:
        json.dump(md, f)
    adm.uploadWrapper(mdpath, serverdir, overwrite=True)
    b = adm.CGImport('metadata.json', serverdir)
    journal('BUILD %d crash-image-1-%s %s %d' % (b['id'], rel, os.path.basename(image),
                                                 len(data)))


OPS = [make_task, close_task, upload, cg_import]
adm, h = connect()
i = 0
while not os.path.exists(STOP):
    op = OPS[i % len(OPS)]
    i += 1
    try:
        op(adm, h)
    except Exception as e:
        journal('ERR %s %s' % (op.__name__, repr(e)[:200].replace('\n', ' ')))
        time.sleep(0.1)
        adm, h = connect()
        if op is upload:
            i -= 1  # the cut upload goes first
"#;

/// The background workload; stopped (stop file, then SIGKILL by pid) when dropped.
struct Workload {
    child: Option<Child>,
    journal: PathBuf,
    stop_file: PathBuf,
    log: PathBuf,
}

impl Workload {
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn acks(&self) -> usize {
        self.lines()
            .iter()
            .filter(|l| !l.starts_with("ERR") && !l.starts_with("PARTIAL"))
            .count()
    }

    fn stop(&mut self) {
        let _ = std::fs::write(&self.stop_file, b"stop");
        if let Some(mut c) = self.child.take() {
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- workload log ----\n{}\n---- journal ----\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default(),
                self.lines().join("\n")
            );
        }
    }
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A pseudo-random number in `0..n` (the std hasher's random keys; no seed to manage).
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() % n.max(1)
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The store's invariants, read with SQLite directly while the hub is dead (the database as
/// the kill left it, recovered from its WAL exactly as the next hub start would), and every
/// write the client saw answered.
fn check_store(hub: &Hub, journal: &[String], round: usize) {
    let db = rusqlite::Connection::open(hub.data_dir().join("containerbuild.sqlite"))
        .expect("open the database");
    let ic: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ic, "ok", "round {round}: integrity_check");
    let fk: Vec<String> = db
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("foreign_key_check");
    assert!(
        fk.is_empty(),
        "round {round}: foreign key violations in {fk:?}"
    );

    // Every task in a definite state, with the fields that state implies.
    let bad = [
        (
            "unknown state",
            "SELECT count(*) FROM tasks WHERE state NOT IN (0,1,2,3,4,5)",
        ),
        (
            "OPEN/ASSIGNED without a host",
            "SELECT count(*) FROM tasks WHERE state IN (1,4) AND host_id IS NULL",
        ),
        (
            "FREE with a host",
            "SELECT count(*) FROM tasks WHERE state = 0 AND host_id IS NOT NULL",
        ),
        (
            "ended without completion time",
            "SELECT count(*) FROM tasks WHERE state IN (2,3,5) AND completion_ts IS NULL",
        ),
        (
            "CLOSED without result",
            "SELECT count(*) FROM tasks WHERE state = 2 AND result IS NULL",
        ),
        (
            "OPEN without start time",
            "SELECT count(*) FROM tasks WHERE state = 1 AND start_ts IS NULL",
        ),
        (
            "child of a missing or later parent",
            "SELECT count(*) FROM tasks c WHERE c.parent IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM tasks p WHERE p.id = c.parent AND p.id < c.id)",
        ),
        // No build half-imported: a CG build has its archive, the archive its buildroot and
        // its two RPM components, all from the one CGImport transaction.
        (
            "CG build without archives",
            "SELECT count(*) FROM builds b WHERE b.cg_id IS NOT NULL AND b.state = 1 AND NOT \
             EXISTS (SELECT 1 FROM archives a WHERE a.build_id = b.id)",
        ),
        (
            "CG build not COMPLETE",
            "SELECT count(*) FROM builds WHERE cg_id IS NOT NULL AND state != 1",
        ),
        (
            "archive without its buildroot",
            "SELECT count(*) FROM archives a WHERE a.buildroot_id IS NULL OR NOT EXISTS \
             (SELECT 1 FROM buildroots r WHERE r.id = a.buildroot_id)",
        ),
        (
            "image archive without its 2 components",
            "SELECT count(*) FROM archives a WHERE (SELECT count(*) FROM archive_unknown_rpms u \
             WHERE u.archive_id = a.id) != 2",
        ),
        // The /metrics counters are kept by triggers in the same transactions.
        (
            "task_counts out of step",
            "SELECT count(*) FROM (SELECT state, method, count(*) AS n FROM tasks GROUP BY \
             state, method) t FULL OUTER JOIN (SELECT * FROM task_counts WHERE n != 0) c \
             USING (state, method) WHERE t.n IS NOT c.n",
        ),
        (
            "build_counts out of step",
            "SELECT count(*) FROM (SELECT state, count(*) AS n FROM builds GROUP BY state) b \
             FULL OUTER JOIN (SELECT * FROM build_counts WHERE n != 0) c USING (state) \
             WHERE b.n IS NOT c.n",
        ),
    ];
    for (what, sql) in bad {
        assert_eq!(count(&db, sql), 0, "round {round}: {what} ({sql})");
    }

    // Everything the client saw answered is there.
    let topdir = hub.data_dir().join("topdir");
    for line in journal {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first().copied() {
            Some("TASK") => {
                let n = count(
                    &db,
                    &format!("SELECT count(*) FROM tasks WHERE id = {}", f[1]),
                );
                assert_eq!(n, 1, "round {round}: answered makeTask {} lost", f[1]);
            }
            Some("CLOSED") => {
                let n = count(
                    &db,
                    &format!(
                        "SELECT count(*) FROM tasks WHERE id = {} AND state = 2",
                        f[1]
                    ),
                );
                assert_eq!(n, 1, "round {round}: answered closeTask {} lost", f[1]);
            }
            Some("BUILD") => {
                let n = count(
                    &db,
                    &format!(
                        "SELECT count(*) FROM builds b JOIN archives a ON a.build_id = b.id \
                         WHERE b.id = {} AND b.state = 1 AND a.filename = '{}' AND a.size = {}",
                        f[1], f[3], f[4]
                    ),
                );
                assert_eq!(n, 1, "round {round}: answered CGImport {} lost", f[2]);
                let file = topdir.join(format!(
                    "packages/crash-image/1/{}/images/{}",
                    f[2].rsplit('-').next().unwrap_or_default(),
                    f[3]
                ));
                let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                assert_eq!(
                    len.to_string(),
                    f[4],
                    "round {round}: imported file {}",
                    file.display()
                );
            }
            Some("UPLOAD") => {
                let file = topdir.join("work").join(f[1]);
                let data = std::fs::read(&file)
                    .unwrap_or_else(|e| panic!("round {round}: {}: {e}", file.display()));
                assert_eq!(
                    data.len().to_string(),
                    f[2],
                    "round {round}: {}",
                    file.display()
                );
                assert_eq!(md5_hex(&data), f[3], "round {round}: {}", file.display());
            }
            _ => {}
        }
    }
}

/// kill -9 of the hub at random moments while a client creates tasks, closes them as a host,
/// uploads files and imports CG builds. After each kill, before the restart: `PRAGMA
/// integrity_check` is `ok`, no foreign key is dangling, every task is in a definite state with
/// the fields that state implies and a parent that exists, every CG build is COMPLETE with its
/// archive, buildroot and components (no build half-imported), the /metrics counters match the
/// rows, and every call the client saw answered (task, closeTask, upload with its md5, import
/// with its file) is there. After the restart on the same data dir the client's sessions go on
/// working. A half-written upload is never mistaken for the whole: `checkUpload` shows a size or
/// md5 different from the file's, and the re-upload with `overwrite=True` gives the right bytes.
#[test]
fn hub_killed_during_writes_keeps_the_store_consistent() {
    let Some(mut hub) = Hub::start_with_config("scheduler_interval = 1\n") else {
        return;
    };
    let host_pw = hub.add_host_cli("crash-host");
    hub.koji_ok(&["grant-cg-access", ADMIN, "atomic-reactor", "--new"]);
    let journal = hub.dir().join("journal.txt");
    let stop_file = hub.dir().join("workload.stop");
    let log = hub.dir().join("workload.log");
    let script = WORKLOAD
        .replace("os.environ['HOST_PW']", &format!("{host_pw:?}"))
        .replace(
            "os.environ['JOURNAL']",
            &format!("{:?}", journal.display().to_string()),
        )
        .replace(
            "os.environ['STOP_FILE']",
            &format!("{:?}", stop_file.display().to_string()),
        );
    let child = hub.python_spawn(&script, &log);
    let mut work = Workload {
        child: Some(child),
        journal,
        stop_file,
        log,
    };

    let started = Instant::now();
    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        // Progress first (after a restart this proves the sessions work again), then a kill at
        // a random moment of the running loop.
        let before = work.acks();
        wait_for(
            Duration::from_secs(30),
            &format!("round {round}: the workload to make progress"),
            || (work.acks() >= before + 4).then_some(()),
        );
        std::thread::sleep(Duration::from_millis(random_below(1500)));
        hub.stop(); // SIGKILL
        check_store(&hub, &work.lines(), round);
        hub.restart();
    }
    let before = work.acks();
    wait_for(
        Duration::from_secs(30),
        "the workload to make progress after the last restart",
        || (work.acks() >= before + 4).then_some(()),
    );
    work.stop();
    hub.stop();
    let lines = work.lines();
    check_store(&hub, &lines, ROUNDS);

    let kinds = |k: &str| lines.iter().filter(|l| l.starts_with(k)).count();
    for k in ["TASK", "CLOSED", "UPLOAD", "BUILD"] {
        assert!(kinds(k) > 0, "no {k} answered:\n{}", lines.join("\n"));
    }
    // Calls the kills cut: each round's kill lands during some call of the busy loop.
    let cut: Vec<&String> = lines.iter().filter(|l| l.starts_with("ERR")).collect();
    assert!(
        cut.len() >= ROUNDS / 2,
        "only {} calls were cut by {ROUNDS} kills:\n{}",
        cut.len(),
        lines.join("\n")
    );
    // A cut upload: what the hub held is never the whole file under the whole file's md5
    // unless it is the whole file.
    for l in lines.iter().filter(|l| l.starts_with("PARTIAL")) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (size, md5, got_size, got_md5) = (f[2], f[3], f[4], f[5]);
        assert!(
            (got_size == size) == (got_md5 == md5),
            "a partial upload passes the checksum: {l}"
        );
    }
    eprintln!(
        "{ROUNDS} kills in {:.1} s: {} tasks, {} closed, {} uploads, {} imports answered; {} \
         calls cut, {} partial uploads seen",
        started.elapsed().as_secs_f64(),
        kinds("TASK"),
        kinds("CLOSED"),
        kinds("UPLOAD"),
        kinds("BUILD"),
        cut.len(),
        kinds("PARTIAL")
    );
    hub.restart();
}

// ---------------------------------------------------------------------------------------------
// 4. Disk full

/// A tmpfs mounted on a directory, unmounted when dropped (declare it before the `Hub`, so the
/// hub is stopped first and the mount is no longer busy).
struct TmpfsMount {
    path: Option<PathBuf>,
}

impl TmpfsMount {
    /// `mount -t tmpfs -o size=SIZE tmpfs DIR`, or `Err(why)`.
    fn mount(dir: &Path, size: &str) -> Result<TmpfsMount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(TmpfsMount {
            path: Some(dir.to_path_buf()),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let ok = Command::new("umount")
                .arg(&p)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Still busy (a process of the test that has not exited yet): detach it.
                let _ = Command::new("umount").arg("-l").arg(&p).status();
            }
        }
    }
}

/// The client side of the disk-full test: logs in while there is space, fills the tmpfs, then
/// tries an upload and state-changing calls (expecting GenericError saying the disk is full),
/// reads, frees the space and makes the same calls again.
const DISK_FULL: &str = r#"
import json, os, time, xmlrpc.client
import koji

URL = os.environ['KOJI_URL']
DATA = os.environ['DATA_DIR']
s = koji.ClientSession(URL, {'user': os.environ['KOJI_USER'],
                             'password': os.environ['KOJI_PASSWORD'], 'max_retries': 0})
s.login()
anon = koji.ClientSession(URL, {'max_retries': 0})
upload_src = os.path.join(os.environ['WORK'], 'upload.bin')
with open(upload_src, 'wb') as f:
    f.write(os.urandom(3 << 20))
before = s.makeTask('sleep', [1])
s.createTag('before-full')


def attempt(name, fn, *a, **kw):
    t = time.time()
    try:
        fn(*a, **kw)
        return {'call': name, 'ok': True}
    except koji.GenericError as e:
        return {'call': name, 'ok': False, 'code': e.faultCode, 'text': str(e),
                'class': type(e).__name__, 'secs': time.time() - t}
    except xmlrpc.client.Fault as e:
        return {'call': name, 'ok': False, 'code': e.faultCode, 'text': e.faultString,
                'class': 'Fault', 'secs': time.time() - t}


def writes():
    return [
        attempt('uploadWrapper', s.uploadWrapper, upload_src, 'full-test', blocksize=1 << 20),
        attempt('makeTask', s.makeTask, 'sleep', [1]),
        attempt('createTag', s.createTag, 'during-full'),
        attempt('makeTask(big)', s.makeTask, 'sleep', ['x' * (2 << 20)]),
    ]


# Fill the file system to the last block (unbuffered, so nothing is left to flush).
filler = os.path.join(DATA, 'filler')
fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
for chunk in (1 << 20, 4096):
    try:
        while True:
            os.write(fd, b'\0' * chunk)
    except OSError:
        pass
os.close(fd)
st = os.statvfs(DATA)
full = {'free_bytes': st.f_bavail * st.f_frsize, 'writes': writes()}
# Reads still answered (anonymous: a login is a write).
full['reads'] = {
    'getAPIVersion': anon.getAPIVersion(),
    'tag': anon.getTag('before-full')['name'],
    'task_state': anon.getTaskInfo(before)['state'],
    'during_full_tag': anon.getTag('during-full'),
}
os.remove(filler)
after = {'writes': writes()}
print('RESULT ' + json.dumps({'full': full, 'after': after}))
"#;

/// The hub's data directory on a 16 MiB tmpfs filled to the last block: an upload and
/// state-changing calls (`makeTask`, `createTag`) get GenericError (1000) saying the hub's disk
/// is full, within seconds; the hub stays up and answers reads (`getAPIVersion`, `getTag`,
/// `getTaskInfo`); nothing of the refused calls is left (no tag, no upload file); once the
/// filler is removed the same calls succeed, and the database passes `integrity_check`.
#[test]
fn disk_full_gives_a_clear_fault_and_recovers() {
    let mut mount: Option<Result<TmpfsMount, String>> = None;
    let Some(mut hub) = Hub::start_prepared("", |dir| {
        mount = Some(TmpfsMount::mount(dir, "16m"));
    }) else {
        return;
    };
    let _mount = match mount.take() {
        Some(Ok(m)) => m,
        Some(Err(why)) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot mount a tmpfs for the data dir: {why}"
            );
            eprintln!(
                "skipping: cannot mount a tmpfs for the data dir ({why}); CI runs it as root"
            );
            return;
        }
        None => panic!("prepare did not run"),
    };
    // `_mount` was created after `hub`, so it would be dropped first: stop the hub explicitly
    // at every exit below (a guard that kills it before the unmount).
    struct StopFirst<'a>(&'a mut Hub);
    impl Drop for StopFirst<'_> {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let work = tempfile::tempdir().expect("tempdir");
    let script = DISK_FULL
        .replace(
            "os.environ['DATA_DIR']",
            &format!("{:?}", hub.data_dir().display().to_string()),
        )
        .replace(
            "os.environ['WORK']",
            &format!("{:?}", work.path().display().to_string()),
        );
    let guard = StopFirst(&mut hub);
    let out = guard.0.python_ok(&script);
    let r = common::result_json(&out);
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    let full = &r["full"];
    assert!(
        full["free_bytes"].as_u64().is_some_and(|b| b < 64 << 10),
        "the tmpfs is not full: {full}"
    );
    for w in full["writes"].as_array().expect("writes") {
        assert_eq!(w["ok"], false, "a write succeeded on a full disk: {w}");
        assert_eq!(w["code"], 1000, "GenericError expected: {w}");
        assert_eq!(w["class"], "GenericError", "{w}");
        let text = w["text"].as_str().unwrap_or_default();
        assert_contains(text, "the hub's disk is full", "fault text");
        assert_contains(text, "free space", "fault text");
        assert!(
            w["secs"].as_f64().is_some_and(|s| s < 10.0),
            "slow fault: {w}"
        );
    }
    let reads = &full["reads"];
    assert_eq!(reads["tag"], "before-full", "{reads}");
    assert_eq!(reads["during_full_tag"], serde_json::Value::Null, "{reads}");
    assert!(reads["getAPIVersion"].as_i64().is_some(), "{reads}");
    for w in r["after"]["writes"].as_array().expect("writes") {
        assert_eq!(w["ok"], true, "after freeing space: {w}");
    }
    // The hub never went down, and the database is whole.
    assert!(
        !guard.0.log().contains("panicked"),
        "hub log:\n{}",
        guard.0.log_tail()
    );
    guard.0.stop();
    let db = rusqlite::Connection::open(guard.0.data_dir().join("containerbuild.sqlite"))
        .expect("open the database");
    let ic: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ic, "ok");
    assert_eq!(
        count(&db, "SELECT count(*) FROM tags WHERE name = 'during-full'"),
        1,
        "createTag after freeing space"
    );
    drop(db);
    drop(guard);
}

// ---------------------------------------------------------------------------------------------
// 2 and 3. Builds: a builder killed during a build, a registry down during the push

const CLOSED: i64 = 2;
const FAILED: i64 = 5;
const TARGET: &str = "f40-candidate";

/// Hub, registry, fixtures (base image in the registry), git daemon, and one builder `b1` with
/// its own buildah storage.
struct BuildSetup {
    hub: Hub,
    registry: TestRegistry,
    fixtures: Fixtures,
    git: GitServer,
    builder: Option<BuilderProc>,
    buildah_root: PathBuf,
    _tmp: tempfile::TempDir,
}

fn build_setup() -> Option<BuildSetup> {
    let (hub, registry, fixtures, git) = build_env(TARGET)?;
    hub.koji_ok(&["add-pkg", "--owner", ADMIN, "f40", "crash-container"]);
    let tmp = tempfile::Builder::new()
        .prefix("cb-crash-")
        .tempdir()
        .expect("tempdir");
    let buildah_root = tmp.path().join("buildah-b1");
    let mut s = BuildSetup {
        hub,
        registry,
        fixtures,
        git,
        builder: None,
        buildah_root,
        _tmp: tmp,
    };
    common::register_host(&s.hub, "b1", &["x86_64"]);
    s.hub
        .koji_ok(&["grant-cg-access", "b1", "atomic-reactor", "--new"]);
    s.start_builder();
    Some(s)
}

impl BuildSetup {
    /// Starts b1; `--force-lock`, since a killed b1's exclusive session is still on the hub.
    fn start_builder(&mut self) {
        let reg = self.registry.host_port();
        let root = self.buildah_root.to_str().expect("utf-8 path").to_owned();
        self.builder = Some(BuilderProc::spawn(
            &self.hub,
            "b1",
            &[
                "--registry",
                &reg,
                "--registry-insecure",
                "--buildah-root",
                &root,
                "--force-lock",
            ],
        ));
    }

    fn builder_log(&self) -> String {
        std::fs::read_to_string(self.hub.dir().join("builder-b1.log")).unwrap_or_default()
    }

    /// A scratch build of a one-commit repo whose RUN prints `marker` and sleeps `secs`.
    fn submit_sleeping(&self, repo: &str, marker: &str, secs: u32) -> i64 {
        let src = self.fixtures.one_commit_repo(
            &self.git,
            repo,
            &[(
                "Dockerfile",
                &format!(
                    "FROM {}\nLABEL com.redhat.component=crash-container name=crash version=1\n\
                     RUN echo {marker} && sleep {secs}\n",
                    self.fixtures.base_ref()
                ),
            )],
        );
        let out = self.hub.koji_ok(&[
            "call",
            "--python",
            "buildContainer",
            &format!("'{src}'"),
            &format!("'{TARGET}'"),
            "{'git_branch': 'main', 'scratch': True}",
        ]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("buildContainer answer {out:?}: {e}"))
    }

    /// The parent's `x86_64.log` (the child's copied in as it grows), read from the topdir.
    fn build_log(&self, id: i64) -> String {
        std::fs::read_to_string(
            self.hub
                .data_dir()
                .join("topdir")
                .join(format!("work/tasks/{}/{id}/x86_64.log", id % 10000)),
        )
        .unwrap_or_default()
    }

    fn wait_log(&self, id: i64, needle: &str, secs: u64) {
        wait_for(
            Duration::from_secs(secs),
            &format!("{needle:?} in the log of task {id}"),
            || self.build_log(id).contains(needle).then_some(()),
        );
    }

    fn wait_end(&self, id: i64) -> i64 {
        wait_for(
            Duration::from_secs(300),
            &format!("task {id} to end"),
            || {
                let (st, _) = task_state(&self.hub, id);
                (st >= 2 && st != 4).then_some(st)
            },
        )
    }

    /// `RESULT <repr>` or `FAULT <code> <text>` of a finished task.
    fn outcome(&self, id: i64) -> String {
        self.hub.python_ok(&format!(
            r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
try:
    print('RESULT', repr(s.getTaskResult({id})))
except Exception as e:
    print('FAULT', getattr(e, 'faultCode', None), getattr(e, 'faultString', e))
"#
        ))
    }

    /// The working containers in b1's buildah storage, as `buildah containers --json` lists them.
    fn containers(&self) -> Vec<serde_json::Value> {
        let out = run_ok(buildah_cmd(&self.buildah_root).args(["containers", "--all", "--json"]));
        if out.trim().is_empty() || out.trim() == "null" {
            return Vec::new();
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("buildah containers: {e}: {out}"))
    }
}

/// Pids of processes whose argument vector has `--root <root>` (buildah on that storage).
fn buildah_pids(root: &Path) -> Vec<u32> {
    let want = root.as_os_str().as_encoded_bytes();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if argv.windows(2).any(|w| w[0] == b"--root" && w[1] == want) {
            out.push(pid);
        }
    }
    out
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

/// Processes a test found running; SIGKILLed by pid when dropped if still there.
struct Strays(Vec<u32>);

impl Drop for Strays {
    fn drop(&mut self) {
        for &p in &self.0 {
            if running(p) {
                // SAFETY: signals a process this test saw running buildah on its own storage.
                unsafe {
                    libc::kill(p as i32, libc::SIGKILL);
                }
            }
        }
    }
}

/// kill -9 of the builder, and of its build's buildah processes, while `buildah bud` runs a RUN
/// step (a crash of the machine's build): working containers stay in the builder's storage
/// (real `buildah containers`: at least one). When the builder starts again it removes them
/// (none of those ids left), says so in its log, and writes its host name to the storage's
/// owner file. The task the killed builder held is freed (`host.getHostTasks` answers for a
/// task the new run does not know) and runs again to an end. (Freeing after `host_timeout`
/// and finishing on another builder is `tests/builder_failover.rs`.)
#[test]
fn killed_builder_leftover_containers_are_removed_at_restart() {
    let Some(mut s) = build_setup() else { return };
    let id = s.submit_sleeping("killed", "crash-run-started", 20);
    s.wait_log(id, "crash-run-started", 180);
    let storage = s.buildah_root.join("storage");
    let orphans = wait_for(Duration::from_secs(30), "buildah running the RUN", || {
        let p = buildah_pids(&storage);
        (!p.is_empty()).then_some(p)
    });
    let _strays = Strays(orphans.clone());
    if let Some(b) = s.builder.as_mut() {
        b.kill_hard();
    }
    // The build's own processes die too, as in a machine crash (a live orphan would also get
    // SIGPIPE at its next line of output to the dead builder): SIGKILL by pid.
    for &p in &orphans {
        if running(p) {
            // SAFETY: signals a buildah process of this test's own builder storage, by pid.
            unsafe {
                libc::kill(p as i32, libc::SIGKILL);
            }
        }
    }
    wait_for(
        Duration::from_secs(10),
        "the build's processes to die",
        || orphans.iter().all(|p| !running(*p)).then_some(()),
    );
    let before = s.containers();
    assert!(
        !before.is_empty(),
        "a killed build leaves working containers"
    );
    let ids: BTreeSet<String> = before
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();

    // Restart: leftovers go before any task is taken.
    let log_before = s.builder_log().len();
    s.start_builder();
    wait_for(
        Duration::from_secs(60),
        "the restarted builder to clean its storage",
        || {
            let log = s.builder_log();
            log[log_before.min(log.len())..]
                .contains("builder started")
                .then_some(())
        },
    );
    let log = s.builder_log()[log_before..].to_owned();
    assert_contains(
        &log,
        "removed a working container a killed build left behind",
        "builder log",
    );
    assert!(
        orphans.iter().all(|p| !running(*p)),
        "leftover buildah processes still run: {orphans:?}"
    );
    let left: Vec<String> = s
        .containers()
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .filter(|i| ids.contains(i))
        .collect();
    assert!(left.is_empty(), "leftover containers not removed: {left:?}");
    assert_eq!(
        std::fs::read_to_string(s.buildah_root.join("storage/containerbuild-owner"))
            .unwrap_or_default()
            .trim(),
        "b1",
        "owner file"
    );
    // The freed task is built again and succeeds: the re-run parent tags its child's image
    // by digest, whichever run's unique tag the child pushed it under.
    let end = s.wait_end(id);
    assert_eq!(
        end,
        2,
        "re-run of task {id} ended in state {end}: {}",
        s.outcome(id)
    );
}

/// A registry that is down when the build pushes: `buildah push` is retried (4 attempts, 2, 4
/// and 8 s apart), each failed attempt a line of the build log, then the task fails with
/// ContainerError 2001 naming the registry and the last error (connection refused). With the
/// registry started again during the backoff, the same build pushes on a later attempt and
/// the task is CLOSED.
#[test]
fn registry_down_during_push_is_retried_then_a_clear_fault() {
    let Some(mut s) = build_setup() else { return };
    let reg = s.registry.host_port();

    // Down for good.
    let id = s.submit_sleeping("regdown", "crash-push-soon", 3);
    s.wait_log(id, "crash-push-soon", 180);
    s.registry.stop();
    let t = Instant::now();
    assert_eq!(s.wait_end(id), FAILED);
    let failed_after = t.elapsed();
    let out = s.outcome(id);
    assert_contains(&out, "FAULT 2001 Image build failed.", "fault");
    assert_contains(
        &out,
        &format!("push to registry {reg} failed after 4 attempts"),
        "fault names the registry",
    );
    assert_contains(&out, "connection refused", "fault has the last error");
    let log = s.build_log(id);
    for n in 1..=3 {
        assert_contains(
            &log,
            &format!("push to registry {reg} failed (attempt {n} of 4)"),
            "build log",
        );
    }

    // Back during the backoff.
    s.registry.start_again();
    let id = s.submit_sleeping("regback", "crash-push-later", 3);
    s.wait_log(id, "crash-push-later", 180);
    s.registry.stop();
    s.wait_log(id, "failed (attempt 1 of 4)", 120);
    s.registry.start_again();
    assert_eq!(s.wait_end(id), CLOSED, "{}", s.outcome(id));
    let log = s.build_log(id);
    assert_contains(&log, "succeeded on attempt", "build log");
    eprintln!(
        "registry down: the build failed {:.1} s after the registry stopped",
        failed_after.as_secs_f64()
    );
}
