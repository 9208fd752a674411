//! Content-generator import with the stock koji 1.36.1 CLI and `koji.ClientSession`: an
//! atomic-reactor-shaped `metadata.json` (image build, one buildroot, a real small
//! `docker-image-*.tar.gz` with two RPM components the hub does not know, logs), uploaded with
//! `uploadWrapper`, reserved with `CGInitBuild` and imported with `CGImport`; then what
//! `getBuild`, `koji buildinfo`, `listArchives`, `listRPMs(imageID=)`, `koji list-builds`,
//! `tagBuild` and `koji list-tagged` show, and the files under `/kojifiles`. The refusals use
//! Koji's fault codes and texts.

mod common;

use std::path::Path;

use common::{Hub, assert_contains, header, result_json};

/// Python helpers shared by the scripts: sessions, faults, test files and metadata.
const PY_COMMON: &str = r#"
import hashlib, io, json, os, sys, tarfile, tempfile, xmlrpc.client
import koji
from koji_cli.lib import unique_path

URL = os.environ['KOJI_URL']
CG = 'atomic-reactor'


def session(user, password):
    s = koji.ClientSession(URL, {'user': user, 'password': password, 'max_retries': 0})
    assert s.login(), user
    return s


def admin():
    return session(os.environ['KOJI_USER'], os.environ['KOJI_PASSWORD'])


def fault(fn, *args, **kwargs):
    """(faultCode, faultString) of a call that must fail."""
    try:
        fn(*args, **kwargs)
    except xmlrpc.client.Fault as e:
        return e.faultCode, e.faultString
    except koji.GenericError as e:
        return e.faultCode, e.args[0]
    raise AssertionError('no fault from %s%r' % (fn, args))


def expect(got, code, text):
    assert got == (code, text), 'expected %r, got %r' % ((code, text), got)


WORK = tempfile.mkdtemp()


def make_image(name, text=b'placeholder image\n', subdir=''):
    d = os.path.join(WORK, subdir)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    with tarfile.open(path, 'w:gz') as t:
        info = tarfile.TarInfo('README')
        info.size = len(text)
        info.mtime = 1700000000
        t.addfile(info, io.BytesIO(text))
    return path


def make_log(name, text, subdir=''):
    d = os.path.join(WORK, subdir)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def output(path, typ, arch, br='builder-x86_64', checksum_type='md5', **more):
    with open(path, 'rb') as f:
        data = f.read()
    h = hashlib.md5(data) if checksum_type == 'md5' else hashlib.sha256(data)
    o = {'buildroot_id': br, 'filename': os.path.basename(path), 'filesize': len(data),
         'checksum': h.hexdigest(), 'checksum_type': checksum_type, 'arch': arch, 'type': typ}
    o.update(more)
    return o


COMPONENTS = [
    {'type': 'rpm', 'name': 'bash', 'version': '5.2.26', 'release': '3.fc40', 'arch': 'x86_64',
     'sigmd5': 'a1b2c3d4e5f60718293a4b5c6d7e8f90', 'signature': 'a15b79cc3aa4c3b6',
     'module': None, 'epoch': None},
    {'type': 'rpm', 'name': 'libfoo', 'version': '1.0', 'release': '7.fc40', 'arch': 'x86_64',
     'sigmd5': '0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'signature': None,
     'module': 'foo:1:20240101:abcd', 'epoch': 2},
]


def image_output(path, digest, br='builder-x86_64', **more):
    extra = {
        'image': {'arch': 'x86_64'},
        'docker': {
            'id': 'sha256:' + digest,
            'parent_id': 'sha256:' + '1' * 64,
            'repositories': ['registry.example.com/testimage:build-1-x86_64',
                             'registry.example.com/testimage@sha256:' + '2' * 64],
            'layer_sizes': [{'diff_id': 'sha256:' + '3' * 64, 'size': 1024}],
            'tags': ['build-1-x86_64'],
            'config': {'architecture': 'amd64', 'os': 'linux'},
            'digests': {'application/vnd.docker.distribution.manifest.v2+json':
                        'sha256:' + '2' * 64},
        },
    }
    return output(path, 'docker-image', 'x86_64', br=br, components=COMPONENTS, extra=extra,
                  **more)


def metadata(name, version, release, outputs, task_id=None, build_id=None, owner='kojiadmin',
             extra=None):
    image = {'isolated': False, 'parent_images': ['registry.example.com/base:1'],
             'parent_image_builds': {'registry.example.com/base:1': None},
             'media_types': ['application/vnd.docker.distribution.manifest.v2+json']}
    b_extra = {'image': image,
               'osbs_build': {'kind': 'container_build', 'engine': 'buildah', 'subtypes': []},
               'submitter': 'osbs'}
    if task_id is not None:
        b_extra['container_koji_task_id'] = task_id
    if extra is not None:
        b_extra = extra
    build = {'name': name, 'version': version, 'release': release,
             'source': 'git://git.example.com/containers/%s#0123456789abcdef' % name,
             'start_time': 1700000000, 'end_time': 1700000300, 'owner': owner,
             'extra': b_extra}
    if build_id is not None:
        build['build_id'] = build_id
    buildroots = [{
        'id': 'builder-x86_64',
        'host': {'os': None, 'arch': 'x86_64'},
        'content_generator': {'name': CG, 'version': '0.1.0'},
        'container': {'type': 'none', 'arch': 'x86_64'},
        'components': [{'type': 'rpm', 'name': 'buildah', 'version': '1.33.7',
                        'release': '1.fc40', 'arch': 'x86_64', 'epoch': 1,
                        'sigmd5': '00' * 16, 'signature': None, 'module': None}],
        'tools': [{'name': 'containerbuild', 'version': '0.1.0'},
                  {'name': 'buildah', 'version': '1.33.7'}],
    }]
    return {'metadata_version': 0, 'build': build, 'buildroots': buildroots, 'output': outputs}


def upload(s, paths, serverdir=None, relpath=''):
    serverdir = serverdir or unique_path('koji-upload')
    for p in paths:
        s.uploadWrapper(p, os.path.join(serverdir, relpath))
    return serverdir
"#;

/// `koji -c ... --user NAME --password PW ...` must succeed; returns stdout.
fn koji_as_ok(hub: &Hub, user: &str, pw: &str, args: &[&str]) -> String {
    let (code, out, err) = hub.koji_as(user, pw, args);
    assert_eq!(
        code,
        0,
        "koji {} as {user} failed\nstdout: {out}\nstderr: {err}\nhub log:\n{}",
        args.join(" "),
        hub.log_tail()
    );
    out
}

/// A user with a password, and (optionally) access to the `atomic-reactor` content generator,
/// granted with the stock `koji grant-cg-access --new`.
fn add_user(hub: &Hub, name: &str, cg_access: bool) -> String {
    let pw = common::random_password();
    hub.add_user_cli(name, &pw, false);
    if cg_access {
        hub.koji_ok(&["grant-cg-access", "--new", name, "atomic-reactor"]);
    }
    pw
}

/// `/mnt/koji/<rel>` as the CLI prints it -> `GET /kojifiles/<rel>` status and Content-Length.
fn fetch(hub: &Hub, cli_path: &str) -> (u16, Option<u64>, String) {
    let rel = cli_path
        .strip_prefix("/mnt/koji/")
        .unwrap_or_else(|| panic!("{cli_path} is not under the CLI topdir /mnt/koji"));
    let (status, headers, body) = hub.raw_get(&format!("/kojifiles/{rel}"));
    let len = header(&headers, "content-length").and_then(|v| v.parse().ok());
    (status, len, body)
}

#[test]
fn image_build_import_end_to_end() {
    let Some(hub) = Hub::start() else { return };
    let pw = add_user(&hub, "osbs", true);
    hub.koji_ok(&["add-tag", "images-candidate"]);
    hub.koji_ok(&[
        "add-pkg",
        "--owner",
        "kojiadmin",
        "images-candidate",
        "testimage-container",
    ]);

    let script = format!(
        "{PY_COMMON}{}",
        r#"
adm = admin()
task_id = adm.makeTask('sleep', [1])
osbs = session('osbs', '@PW@')
assert osbs.listCGs() == {CG: {'id': osbs.listCGs()[CG]['id'], 'users': ['osbs']}}

rsv = osbs.CGInitBuild(CG, {'name': 'testimage-container', 'version': '1.0', 'release': '1'})
assert sorted(rsv) == ['build_id', 'token'] and len(rsv['token']) == 64, rsv
b = osbs.getBuild(rsv['build_id'])
assert b['state'] == koji.BUILD_STATES['BUILDING'], b
assert b['cg_name'] == CG and b['owner_name'] == 'osbs' and b['completion_ts'] is None, b

digest = hashlib.sha256(b'config').hexdigest()
image = make_image('docker-image-%s.x86_64.tar.gz' % digest)
log = make_log('x86_64.log', 'STEP 1/2: FROM base\nSTEP 2/2: RUN true\n')
blog = make_log('osbs-build.log', 'build started\n', subdir='logs')
outputs = [
    image_output(image, digest),
    output(log, 'log', 'noarch'),
    output(blog, 'log', 'noarch', subdir='builder', checksum_type='sha256'),
]
md = metadata('testimage-container', '1.0', '1', outputs, task_id=task_id,
              build_id=rsv['build_id'])
serverdir = upload(osbs, [image, log, blog])
mdpath = os.path.join(WORK, 'metadata.json')
with open(mdpath, 'w') as f:
    json.dump(md, f, indent=2)
osbs.uploadWrapper(mdpath, serverdir)

binfo = osbs.CGImport('metadata.json', serverdir, token=rsv['token'])
bid = rsv['build_id']
assert binfo['id'] == bid and binfo['state'] == koji.BUILD_STATES['COMPLETE'], binfo
b = osbs.getBuild('testimage-container-1.0-1')
assert b['id'] == bid and b['state'] == 1, b
assert b['owner_name'] == 'kojiadmin', b
assert b['source'] == 'git://git.example.com/containers/testimage-container#0123456789abcdef', b
assert b['task_id'] == task_id, b
assert b['cg_name'] == CG and b['completion_ts'] is not None, b
assert b['extra']['container_koji_task_id'] == task_id, b
assert b['extra']['image']['parent_images'] == ['registry.example.com/base:1'], b
assert b['extra']['typeinfo'] == {'image': b['extra']['image']}, b
assert b['extra']['osbs_build']['engine'] == 'buildah', b
assert osbs.getBuildType(bid) == {'image': {'build_id': bid}}
assert osbs.getImageBuild(bid) == {'build_id': bid}

archives = osbs.listArchives(buildID=bid)
assert len(archives) == 1, archives
a = archives[0]
assert a['btype'] == 'image' and a['type_name'] == 'tar', a
assert a['filename'] == os.path.basename(image), a
assert a['size'] == os.path.getsize(image), a
assert a['checksum'] == outputs[0]['checksum'] and a['checksum_type'] == 0, a
assert a['extra']['docker']['id'] == 'sha256:' + digest, a
assert a['extra']['image'] == {'arch': 'x86_64'}, a
assert a['metadata_only'] is False, a
img = osbs.listArchives(buildID=bid, type='image')
assert img[0]['arch'] == 'x86_64', img
assert osbs.getArchive(a['id'])['filename'] == a['filename']

rpms = osbs.listRPMs(imageID=a['id'])
assert [r['name'] for r in rpms] == ['bash', 'libfoo'], rpms
bash, libfoo = rpms
for r, c in zip(rpms, COMPONENTS):
    assert r['id'] < 0, r
    for k in ('name', 'version', 'release', 'arch', 'epoch'):
        assert r[k] == c[k], (k, r, c)
    assert r['payloadhash'] == c['sigmd5'], r
    assert r['nvr'] == '%(name)s-%(version)s-%(release)s' % c, r
    assert r['build_id'] is None and r['buildroot_id'] is None, r
    assert r['extra']['signature'] == c['signature'] and r['extra']['module'] == c['module'], r
    assert r['draft'] is False and r['metadata_only'] is False, r
assert bash['epoch'] is None and libfoo['epoch'] == 2
assert osbs.listRPMs(imageID=a['id'], queryOpts={'countOnly': True}) == 2
assert osbs.listRPMs(imageID=a['id'], arches='noarch') == []
assert osbs.listRPMs(buildID=bid) == []
assert osbs.getRPM(bash['id']) is None

logs = sorted((l['dir'], l['name']) for l in osbs.getBuildLogs(bid))
assert logs == [('.', 'cg_import.log'), ('.', 'x86_64.log'), ('builder', 'osbs-build.log')], logs

br = osbs.getBuildroot(a['buildroot_id'])
assert br['cg_name'] == CG and br['cg_version'] == '0.1.0', br
assert br['container_type'] == 'none' and br['container_arch'] == 'x86_64', br
assert br['host_arch'] == 'x86_64' and br['host_os'] is None and br['br_type'] == 1, br
assert osbs.listBuildroots(buildrootID=a['buildroot_id']) == [br]
assert osbs.listBuildroots(hostID=1) == []
assert osbs.listRPMs(componentBuildrootID=a['buildroot_id']) == []
assert osbs.listArchives(buildrootID=a['buildroot_id'])[0]['id'] == a['id']

# A build that is not complete cannot be tagged.
rsv2 = osbs.CGInitBuild(CG, {'name': 'testimage-container', 'version': '1.0', 'release': '2'})
expect(fault(adm.tagBuild, 'images-candidate', rsv2['build_id']), 1003,
       'build testimage-container-1.0-2 not complete: state BUILDING')
expect(fault(adm.tagBuild, 'nosuch', bid), 1000, "No such tagInfo: 'nosuch'")
assert osbs.CGRefundBuild(CG, rsv2['build_id'], rsv2['token']) is None

print('RESULT ' + json.dumps({'build_id': bid, 'archive_id': a['id'], 'serverdir': serverdir,
                              'image': os.path.basename(image), 'size': a['size'],
                              'task_id': task_id, 'buildroot_id': a['buildroot_id']}))
"#
        .replace("@PW@", &pw)
    );
    let r = result_json(&hub.python_ok(&script));
    let build_id = r["build_id"].as_i64().unwrap();
    let archive_id = r["archive_id"].as_i64().unwrap();
    let task_id = r["task_id"].as_i64().unwrap();
    let image = r["image"].as_str().unwrap().to_string();
    let size = r["size"].as_u64().unwrap();
    let nvr = "testimage-container-1.0-1";

    // The uploads moved into the build directory; symlinks stay behind, as Koji leaves them.
    let topdir = hub.data_dir().join("topdir");
    let upload = topdir
        .join("work")
        .join(r["serverdir"].as_str().unwrap())
        .join(&image);
    let meta = std::fs::symlink_metadata(&upload).unwrap();
    assert!(meta.file_type().is_symlink(), "{upload:?} is not a symlink");
    let final_path = topdir.join(format!("packages/testimage-container/1.0/1/images/{image}"));
    assert_eq!(
        std::fs::canonicalize(&upload).unwrap(),
        std::fs::canonicalize(&final_path).unwrap()
    );
    assert!(!Path::new(&upload).read_link().unwrap().is_absolute());

    // koji buildinfo: state, owner, source, task, image archive path under the topdir.
    let out = hub.koji_ok(&["buildinfo", nvr]);
    assert_contains(&out, &format!("BUILD: {nvr} [{build_id}]"), "buildinfo");
    assert_contains(&out, "State: COMPLETE", "buildinfo");
    assert_contains(&out, "Built by: kojiadmin", "buildinfo");
    assert_contains(
        &out,
        "Source: git://git.example.com/containers/testimage-container#0123456789abcdef",
        "buildinfo",
    );
    assert_contains(&out, &format!("Task: {task_id} sleep"), "buildinfo");
    assert_contains(&out, "Image archives:", "buildinfo");
    assert_contains(&out, "'container_koji_task_id': ", "buildinfo extra");
    let image_line = format!("/mnt/koji/packages/testimage-container/1.0/1/images/{image}");
    assert_contains(&out, &image_line, "buildinfo");

    // Every path buildinfo printed, and the other build files, resolve under /kojifiles.
    let (status, len, _) = fetch(&hub, &image_line);
    assert_eq!((status, len), (200, Some(size)), "GET {image_line}");
    let base = "/mnt/koji/packages/testimage-container/1.0/1";
    let (status, _, body) = fetch(&hub, &format!("{base}/metadata.json"));
    assert_eq!(status, 200);
    let md: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(md["build"]["build_id"], build_id);
    let (status, _, body) = fetch(&hub, &format!("{base}/data/logs/cg_import.log"));
    assert_eq!(status, 200);
    assert_contains(
        &body,
        &format!("Archive {archive_id} ({image}): KEEPING unmatched rpm component as rpm id -1"),
        "cg_import.log",
    );
    assert_contains(&body, "'name': 'libfoo'", "cg_import.log");
    assert_contains(
        &body,
        "2 components: 0 rpms matched known rpms, 2 unknown rpms kept",
        "cg_import.log",
    );
    assert_contains(
        &body,
        "IGNORING unmatched rpm component: {'arch': 'x86_64', 'epoch': 1",
        "cg_import.log (buildroot component)",
    );
    assert!(
        body.trim_end().ends_with("CG import was SUCCESSFUL."),
        "{body}"
    );
    let (status, _, body) = fetch(&hub, &format!("{base}/data/logs/x86_64.log"));
    assert_eq!(status, 200);
    assert_contains(&body, "STEP 2/2: RUN true", "x86_64.log");
    let (status, _, _) = fetch(&hub, &format!("{base}/data/logs/builder/osbs-build.log"));
    assert_eq!(status, 200);

    // The read side through the stock CLI.
    let out = hub.koji_ok(&["call", "listRPMs", &format!("imageID={archive_id}")]);
    assert_contains(&out, "'name': 'bash'", "listRPMs(imageID=)");
    assert_contains(&out, "'name': 'libfoo'", "listRPMs(imageID=)");
    assert_contains(&out, "'epoch': 2", "listRPMs(imageID=)");
    let out = hub.koji_ok(&[
        "call",
        "--kwargs",
        &format!("{{'imageID': {archive_id}}}"),
        "listRPMs",
    ]);
    assert_contains(
        &out,
        "'payloadhash': 'a1b2c3d4e5f60718293a4b5c6d7e8f90'",
        "listRPMs",
    );
    let out = hub.koji_ok(&["list-builds", "--type=image"]);
    assert_contains(&out, nvr, "list-builds --type=image");
    let out = hub.koji_ok(&["list-builds", "--type=rpm"]);
    assert!(
        !out.contains(nvr),
        "an image build is not an rpm build:\n{out}"
    );
    let out = hub.koji_ok(&["call", "listArchives", &format!("buildID={build_id}")]);
    assert_contains(&out, &format!("'filename': '{image}'"), "listArchives");
    let br = r["buildroot_id"].as_i64().unwrap().to_string();
    let out = hub.koji_ok(&["list-buildroot", "--built", &br]);
    assert_contains(&out, "Built Archives:", "list-buildroot --built");
    assert_contains(&out, &image, "list-buildroot --built");

    // Tagging into the destination tag.
    let out = hub.koji_ok(&["tag-build", "--wait", "images-candidate", nvr]);
    assert_contains(&out, "Created task", "tag-build");
    assert_contains(&out, "completed successfully", "tag-build");
    let out = hub.koji_ok(&["list-tagged", "images-candidate"]);
    assert_contains(&out, nvr, "list-tagged");
    assert_contains(&out, "images-candidate", "list-tagged");
    let out = hub.koji_ok(&["buildinfo", nvr]);
    assert_contains(&out, "Tags: images-candidate", "buildinfo after tagging");
    // A second tagging fails in its task, with Koji's text.
    let (code, out, err) = hub.koji(&["tag-build", "--wait", "images-candidate", nvr]);
    assert_ne!(code, 0, "re-tagging must fail\n{out}{err}");
    assert_contains(
        &format!("{out}{err}"),
        &format!("build {nvr} already tagged (images-candidate)"),
        "re-tag",
    );
    // A package that is not listed in the tag is refused at once.
    hub.koji_ok(&["add-tag", "other"]);
    let (code, out, err) = hub.koji(&["tag-build", "other", nvr]);
    assert_ne!(code, 0, "{out}{err}");
    assert_contains(
        &err,
        "Package testimage-container not in list for other",
        "tag-build into a tag without the package",
    );
    // The CG user may tag too (no tag permission needed on an open tag), here with a move.
    hub.koji_ok(&[
        "add-pkg",
        "--owner",
        "kojiadmin",
        "other",
        "testimage-container",
    ]);
    let out = hub.python_ok(&format!(
        "{PY_COMMON}{}",
        r#"
osbs = session('osbs', '@PW@')
t = osbs.tagBuild('other', 'testimage-container-1.0-1', fromtag='images-candidate')
info = osbs.getTaskInfo(t, request=True)
assert info['state'] == koji.TASK_STATES['CLOSED'] and info['method'] == 'tagBuild', info
assert info['request'][2:] == [False, osbs.getTag('images-candidate')['id']], info
assert [b['nvr'] for b in osbs.listTagged('other')] == ['testimage-container-1.0-1']
assert osbs.listTagged('images-candidate') == []
t = osbs.tagBuild('other', 'testimage-container-1.0-1')
assert osbs.getTaskInfo(t)['state'] == koji.TASK_STATES['FAILED']
expect(fault(osbs.getTaskResult, t), 1003,
       'build testimage-container-1.0-1 already tagged (other)')
print('tagging ok')
"#
        .replace("@PW@", &pw)
    ));
    assert_contains(&out, "tagging ok", "tagBuild as the CG user");
    let out = koji_as_ok(&hub, "osbs", &pw, &["list-tagged", "other"]);
    assert_contains(&out, nvr, "list-tagged other");
}

#[test]
fn cg_import_refusals() {
    let Some(hub) = Hub::start() else { return };
    let pw = add_user(&hub, "osbs", true);
    let mpw = add_user(&hub, "mallory", false);
    let script = format!(
        "{PY_COMMON}{}",
        r#"
adm = admin()
osbs = session('osbs', '@PW@')
mallory = session('mallory', '@MPW@')
anon = koji.ClientSession(URL)
cg_id = osbs.listCGs()[CG]['id']
nvr = {'name': 'refused', 'version': '1', 'release': '1'}

# Access.
expect(fault(mallory.CGInitBuild, CG, nvr), 1002, 'Content generator access required (atomic-reactor)')
expect(fault(adm.CGInitBuild, CG, nvr), 1002, 'Content generator access required (atomic-reactor)')
expect(fault(anon.CGInitBuild, CG, nvr), 1002, 'Not logged-in')
expect(fault(osbs.CGInitBuild, 'nosuch', nvr), 1000, 'No such entry in table content_generator: nosuch')
expect(fault(adm.grantCGAccess, 'osbs', CG), 1000,
       'User already has access to content generator atomic-reactor')
expect(fault(adm.grantCGAccess, 'osbs', 'other'), 1000,
       'No such entry in table content_generator: other')
expect(fault(osbs.grantCGAccess, 'mallory', CG), 1004,
       'admin permission required (logged in as osbs)')
expect(fault(adm.grantCGAccess, 'nobody', CG), 1000, "No such user: 'nobody'")
expect(fault(osbs.CGInitBuild, CG, {'name': 'x', 'version': '1-2', 'release': '1'}), 1000,
       'The "-" character not allowed in version field')
expect(fault(osbs.CGInitBuild, CG, {'name': '..', 'version': '1', 'release': '1'}), 1000,
       "Invalid name for a build directory: '..'")

# One reservation per N-V-R.
rsv = osbs.CGInitBuild(CG, nvr)
bid = rsv['build_id']
expect(fault(osbs.CGInitBuild, CG, nvr), 1000, 'Build is already reserved')

digest = hashlib.sha256(b'refused').hexdigest()
image = make_image('docker-image-%s.x86_64.tar.gz' % digest)
log = make_log('x86_64.log', 'log\n')
sd = upload(osbs, [image, log])


def md(build_id=bid, **kw):
    return metadata('refused', '1', '1', [image_output(image, digest), output(log, 'log', 'noarch')],
                    build_id=build_id, **kw)


# Metadata: version, JSON text, file.
bad = md()
bad['metadata_version'] = 1
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'No such metadata version: 1')
expect(fault(osbs.CGImport, '{not json', sd, rsv['token']), 1000, "Invalid json data: '{not json'")
expect(fault(osbs.CGImport, 'nosuch.json', sd, rsv['token']), 1000, 'No such file: nosuch.json')

# Tokens.
expect(fault(osbs.CGImport, md(), sd, 'bad-token'), 1000, "Token doesn't match build ID %d" % bid)
expect(fault(osbs.CGImport, md(), sd), 1000, "Token doesn't match build ID %d" % bid)
expect(fault(osbs.CGImport, md(build_id=None), sd, rsv['token']), 1000,
       'Reservation token given, but no build_id in metadata')
expect(fault(mallory.CGImport, md(), sd, rsv['token']), 1002,
       'Content generator access required (atomic-reactor)')
bad = md()
bad['build']['release'] = '2'
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'Build (%d) NVR is different' % bid)

# Uploads must be what the metadata says.
bad = md()
bad['output'][0]['filesize'] += 1
size = os.path.getsize(image)
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000,
       "File size %d for %s (expected %d) doesn't match. Corrupted upload?"
       % (size, os.path.basename(image), size + 1))
bad = md()
bad['output'][1]['checksum'] = '0' * 32
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000,
       'File checksum mismatch for x86_64.log: %s != %s'
       % ('0' * 32, hashlib.md5(b'log\n').hexdigest()))
bad = md()
bad['output'][1]['checksum_type'] = 'crc32'
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'Unsupported verify type: crc32')
bad = md()
bad['output'][1]['filename'] = 'missing.log'
code, text = fault(osbs.CGImport, bad, sd, rsv['token'])
assert code == 1 and text.startswith("<class 'FileNotFoundError'>: [Errno 2] No such file or directory: "), text

# Paths from metadata never leave the upload directory.
for field, value in [('filename', '../../../../etc/passwd'), ('relpath', '/etc'),
                     ('relpath', 'a/../../b'), ('subdir', '../../x')]:
    bad = md()
    bad['output'][1][field] = value
    expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1,
           "<class 'ValueError'>: Invalid path segment: %s" % value)
expect(fault(osbs.CGImport, md(), '../' + sd, rsv['token']), 1,
       "<class 'ValueError'>: Invalid path segment: ../" + sd)
expect(fault(osbs.CGImport, 'metadata.json', '/etc', rsv['token']), 1,
       "<class 'ValueError'>: Invalid path segment: /etc")

# Types: Koji refuses both the legacy extra.image and extra.typeinfo.image.
bad = md()
bad['build']['extra']['typeinfo'] = {'image': {}}
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, "Duplicate typeinfo for 'image'")
bad = md()
del bad['build']['extra']['image']
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'Output type image not listed in build types')
bad = md()
bad['build']['extra']['typeinfo'] = {'nosuch': {}}
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'No such entry in table btype: nosuch')
bad = md()
del bad['output'][0]['extra']['image']
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'No typeinfo for: ' + os.path.basename(image))
bad = md()
bad['output'][1]['buildroot_id'] = 'elsewhere'
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, "Missing buildroot metadata for id 'elsewhere'")
bad = md()
bad['output'][0]['components'] = [{'type': 'pip', 'name': 'x'}]
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'No such component type: pip')
bad = md()
del bad['build']['source']
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1, "<class 'KeyError'>: 'source'")
bad = md()
bad['build']['owner'] = 'nobody'
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, "No such user: 'nobody'")
bad = md(task_id=999999)
expect(fault(osbs.CGImport, bad, sd, rsv['token']), 1000, 'No such task: 999999')

# A failure after the first file moved undoes the moves: the same image name twice.
image2 = make_image(os.path.basename(image), subdir='second')
sd2 = upload(osbs, [image], relpath='a')
upload(osbs, [image2], serverdir=sd2, relpath='b')
dup = metadata('refused', '1', '1',
               [image_output(image, digest, relpath='a'), image_output(image2, digest, relpath='b')],
               build_id=bid)
code, text = fault(osbs.CGImport, dup, sd2, rsv['token'])
assert code == 1000 and text.startswith('Error importing archive file, ') and \
    text.endswith('/packages/refused/1/1/images/%s already exists' % os.path.basename(image)), text

# Nothing of the failed attempts stayed: the build is still reserved, with no archives.
b = osbs.getBuild(bid)
assert b['state'] == koji.BUILD_STATES['BUILDING'], b
assert osbs.listArchives(buildID=bid) == []

# The good import, with the metadata as JSON text, then the N-V-R is taken.
done = osbs.CGImport(json.dumps(md()), sd, rsv['token'])
assert done['id'] == bid and done['state'] == 1 and done['owner_name'] == 'kojiadmin', done
expect(fault(osbs.CGRefundBuild, CG, bid, rsv['token']), 1000,
       'Build ID %d is not in BUILDING state' % bid)
code, text = fault(osbs.CGInitBuild, CG, nvr)
assert code == 1000, (code, text)
pkg = adm.getPackageID('refused')
assert text == ("Build already exists (id=%d, state=COMPLETE): {'name': 'refused', 'version': '1', "
                "'release': '1', 'owner': %d, 'state': 0, 'completion_time': None, 'cg_id': %d, "
                "'epoch': None, 'pkg_id': %d, 'extra': None, 'start_time': 'NOW', "
                "'source': None, 'task_id': None, 'volume_id': 0, 'draft': False}"
                % (bid, osbs.getLoggedInUser()['id'], cg_id, pkg)), text
sd3 = upload(osbs, [image, log])
expect(fault(osbs.CGImport, md(build_id=None), sd3), 1000,
       'Build already exists: refused-1-1 (id=%d)' % bid)

# Refunds: FAILED, then the N-V-R can be reserved again (same build), then CANCELED.
nvr2 = {'name': 'refunded', 'version': '2', 'release': '1'}
r2 = osbs.CGInitBuild(CG, nvr2)
expect(fault(osbs.CGRefundBuild, CG, r2['build_id'], 'bad'), 1000,
       "Token doesn't match build ID %d" % r2['build_id'])
expect(fault(osbs.CGRefundBuild, CG, r2['build_id'], r2['token'], 1), 1000,
       'Only FAILED/CANCELED build states are allowed')
expect(fault(mallory.CGRefundBuild, CG, r2['build_id'], r2['token']), 1002,
       'Content generator access required (atomic-reactor)')
assert osbs.CGRefundBuild(CG, r2['build_id'], r2['token']) is None
b = osbs.getBuild(r2['build_id'])
assert b['state'] == koji.BUILD_STATES['FAILED'] and b['completion_ts'] is not None, b
r3 = osbs.CGInitBuild(CG, nvr2)
assert r3['build_id'] == r2['build_id'] and r3['token'] != r2['token'], (r2, r3)
assert osbs.getBuild(r3['build_id'])['state'] == koji.BUILD_STATES['BUILDING']
assert osbs.CGRefundBuild(CG, r3['build_id'], r3['token'], koji.BUILD_STATES['CANCELED']) is None
assert osbs.getBuild(r3['build_id'])['state'] == koji.BUILD_STATES['CANCELED']
# A CANCELED N-V-R can also be imported without a reservation: the same build is reused.
img3 = make_image('docker-image-%s.x86_64.tar.gz' % ('9' * 64), subdir='third')
sd4 = upload(osbs, [img3])
free = metadata('refunded', '2', '1', [image_output(img3, '9' * 64)])
done = osbs.CGImport(free, sd4)
assert done['id'] == r2['build_id'] and done['state'] == 1, done

# Revoking access.
adm.revokeCGAccess('osbs', CG)
expect(fault(osbs.CGInitBuild, CG, {'name': 'late', 'version': '1', 'release': '1'}), 1002,
       'Content generator access required (atomic-reactor)')
assert adm.listCGs() == {}
print('RESULT ' + json.dumps({'sd2': sd2, 'image': os.path.basename(image), 'sd': sd}))
"#
        .replace("@PW@", &pw)
        .replace("@MPW@", &mpw)
    );
    let r = result_json(&hub.python_ok(&script));
    let work = hub.data_dir().join("topdir/work");
    let image = r["image"].as_str().unwrap();
    // The undone import put both uploads back as regular files.
    for sub in ["a", "b"] {
        let p = work.join(r["sd2"].as_str().unwrap()).join(sub).join(image);
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.is_file(), "{p:?} should be a regular file again");
    }
    // No file was written outside the topdir by the traversal attempts.
    assert!(!hub.data_dir().join("etc").exists());
    let out = hub.koji_ok(&["list-builds", "--type=image"]);
    assert_contains(&out, "refused-1-1", "list-builds");
    assert_contains(&out, "refunded-2-1", "list-builds");
}

#[test]
fn btypes_and_koji_cli_cg_commands() {
    let Some(hub) = Hub::start() else { return };
    let pw = add_user(&hub, "osbs", true);
    let out = hub.koji_ok(&["call", "listBTypes"]);
    assert_contains(&out, "'name': 'image'", "listBTypes");
    hub.koji_ok(&["call", "addBType", "icm"]);
    let (code, _, err) = hub.koji(&["call", "addBType", "icm"]);
    assert_ne!(code, 0);
    assert_contains(&err, "btype already exists", "addBType twice");
    let out = hub.koji_ok(&[
        "call",
        "listBTypes",
        "--kwargs",
        "{'query': {'name': 'icm'}}",
    ]);
    assert_contains(&out, "'name': 'icm'", "listBTypes(query=)");

    // A new-style btype (icm) next to the image: files/<btype>/ in the build directory.
    let script = format!(
        "{PY_COMMON}{}",
        r#"
osbs = session('osbs', '@PW@')
digest = hashlib.sha256(b'icm').hexdigest()
image = make_image('docker-image-%s.x86_64.tar.gz' % digest)
icm = make_log('icm-x86_64.json', json.dumps({'bomFormat': 'CycloneDX'}))
outputs = [image_output(image, digest),
           output(icm, 'json', 'noarch', extra={'typeinfo': {'icm': {}}})]
extra = {'image': {'isolated': False}, 'typeinfo': {'icm': {'name': 'icm', 'archives': ['icm-x86_64.json']}}}
md = metadata('icm-container', '3', '1', outputs, extra=extra)
sd = upload(osbs, [image, icm])
b = osbs.CGImport(md, sd)
bt = osbs.getBuildType(b['id'])
assert sorted(bt) == ['icm', 'image'], bt
assert bt['icm'] == {'name': 'icm', 'archives': ['icm-x86_64.json']}, bt
arch = osbs.listArchives(buildID=b['id'], type='icm')
assert [a['filename'] for a in arch] == ['icm-x86_64.json'] and arch[0]['type_name'] == 'json', arch
print('icm ok')
"#
        .replace("@PW@", &pw)
    );
    assert_contains(&hub.python_ok(&script), "icm ok", "icm import");
    let out = hub.koji_ok(&["buildinfo", "icm-container-3-1"]);
    assert_contains(&out, "Icm Archives:", "buildinfo");
    let line = "/mnt/koji/packages/icm-container/3/1/files/icm/icm-x86_64.json";
    assert_contains(&out, line, "buildinfo");
    let (status, _, body) = fetch(&hub, line);
    assert_eq!(status, 200);
    assert_contains(&body, "CycloneDX", "icm file");
    let out = hub.koji_ok(&["list-builds", "--type=icm"]);
    assert_contains(&out, "icm-container-3-1", "list-builds --type=icm");

    // The stock CLI's own content-generator commands: reserve-cg, then import-cg (which uploads
    // the outputs to cli-import/... and passes the metadata as a dict).
    let out = koji_as_ok(
        &hub,
        "osbs",
        &pw,
        &["reserve-cg", "atomic-reactor", "cli-container-4-1"],
    );
    let (build_id, token) = out
        .trim()
        .strip_prefix("Reserved build ")
        .and_then(|r| r.split_once(" with token "))
        .map(|(id, t)| (id.to_string(), t.trim_matches('\'').to_string()))
        .unwrap_or_else(|| panic!("unexpected reserve-cg output: {out}"));
    let script = format!(
        "{PY_COMMON}{}",
        r#"
digest = hashlib.sha256(b'cli').hexdigest()
image = make_image('docker-image-%s.x86_64.tar.gz' % digest)
log = make_log('x86_64.log', 'cli build\n')
md = metadata('cli-container', '4', '1', [image_output(image, digest), output(log, 'log', 'noarch')])
with open(os.path.join(WORK, 'metadata.json'), 'w') as f:
    json.dump(md, f)
print('RESULT ' + json.dumps({'dir': WORK}))
"#
    );
    let dir = result_json(&hub.python_ok(&script))["dir"]
        .as_str()
        .unwrap()
        .to_string();
    let md = format!("{dir}/metadata.json");
    koji_as_ok(
        &hub,
        "osbs",
        &pw,
        &[
            "import-cg",
            "--noprogress",
            "--build-id",
            &build_id,
            "--token",
            &token,
            &md,
            &dir,
        ],
    );
    let out = hub.koji_ok(&["buildinfo", "cli-container-4-1"]);
    assert_contains(
        &out,
        &format!("BUILD: cli-container-4-1 [{build_id}]"),
        "buildinfo",
    );
    assert_contains(&out, "State: COMPLETE", "buildinfo");
    assert_contains(&out, "Image archives:", "buildinfo");

    // revoke-cg-access with the stock CLI.
    hub.koji_ok(&["revoke-cg-access", "osbs", "atomic-reactor"]);
    let out = hub.koji_ok(&["call", "listCGs"]);
    assert_eq!(out.trim(), "{}");
}
