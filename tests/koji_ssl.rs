//! HTTPS with client certificates: `serve --tls-cert/--tls-key/--client-ca`, Koji's `sslLogin`
//! with the stock koji CLI (`authtype = ssl`), its refusals, a builder logging in with a
//! certificate, and failed-login throttling.
//!
//! Every certificate and key is made at run time with the `openssl` CLI in the test's temporary
//! directory: a CA, a server certificate for IP 127.0.0.1, client certificates, and a second CA
//! whose client certificate the hub must refuse.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{BuilderProc, Hub, register_host, wait_for};

/// Runs `openssl ARGS...` (an argument vector) and panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.crt`, `NAME.key`) with a P-256 key.
fn make_ca(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `NAME.crt` + `NAME.key` signed by CA `ca`, and `NAME.pem` with both (koji's
/// `cert` file).
fn make_cert(dir: &Path, ca: &str, name: &str, subj: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subj,
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    let pem = [
        std::fs::read(dir.join(format!("{name}.crt"))).expect("read cert"),
        std::fs::read(dir.join(format!("{name}.key"))).expect("read key"),
    ]
    .concat();
    std::fs::write(dir.join(format!("{name}.pem")), pem).expect("write pem");
}

const CLIENT_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                          extendedKeyUsage=clientAuth\n";

/// The test's certificates: `ca` signs the server and the clients `alice`, `bob`, `kojiweb`
/// (the proxy) and `host` (CN = the builder host); `otherca` signs `mallory` (CN=alice).
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make(host: &str) -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("containerbuild-certs-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        make_ca(d, "ca", "Test Koji CA");
        make_ca(d, "otherca", "Some Other CA");
        make_cert(
            d,
            "ca",
            "server",
            "/CN=127.0.0.1",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        );
        make_cert(d, "ca", "alice", "/O=Test Org/CN=alice", CLIENT_EXT);
        make_cert(d, "ca", "bob", "/O=Test Org/CN=bob", CLIENT_EXT);
        make_cert(
            d,
            "ca",
            "kojiweb",
            "/O=Test Org/OU=web/CN=kojiweb",
            CLIENT_EXT,
        );
        make_cert(
            d,
            "ca",
            "host",
            &format!("/O=Test Org/CN={host}"),
            CLIENT_EXT,
        );
        make_cert(d, "otherca", "mallory", "/O=Test Org/CN=alice", CLIENT_EXT);
        Certs { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn p(&self, file: &str) -> String {
        self.path(file).to_string_lossy().into_owned()
    }
}

/// Starts an HTTPS hub with the test CA for clients and rewrites its koji config: profiles
/// `koji` (password), `anon` (noauth), `ssl` (alice), `mallory` (a certificate of another CA),
/// all over https with `serverca`.
fn tls_hub(certs: &Certs, toml: Option<&str>) -> Option<Hub> {
    let (cert, key, ca) = (
        certs.p("server.crt"),
        certs.p("server.key"),
        certs.p("ca.crt"),
    );
    let args = [
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
        "--client-ca",
        ca.as_str(),
    ];
    let hub = match toml {
        Some(t) => Hub::start_with_args_and_config(&args, t)?,
        None => Hub::start_with_args(&args)?,
    };
    let p = hub.port();
    let mut conf = String::new();
    for (profile, auth) in [
        ("koji", "authtype = password\n".to_string()),
        ("anon", "authtype = noauth\n".to_string()),
        (
            "ssl",
            format!("authtype = ssl\ncert = {}\n", certs.p("alice.pem")),
        ),
        (
            "bob",
            format!("authtype = ssl\ncert = {}\n", certs.p("bob.pem")),
        ),
        (
            "mallory",
            // It is refused at the handshake: retry once, not for minutes.
            format!(
                "authtype = ssl\ncert = {}\nmax_retries = 1\nretry_interval = 1\n",
                certs.p("mallory.pem")
            ),
        ),
    ] {
        conf.push_str(&format!(
            "[{profile}]\nserver = https://127.0.0.1:{p}/kojihub\nweburl = https://127.0.0.1:{p}/koji\n\
             topurl = https://127.0.0.1:{p}/kojifiles\nserverca = {ca}\n{auth}\n"
        ));
    }
    std::fs::write(hub.config_path(), conf).expect("write koji config");
    Some(hub)
}

/// A Python script's stdout; the script talks to the HTTPS hub with koji's `ClientSession`.
fn py(hub: &Hub, certs: &Certs, body: &str) -> String {
    let script = format!(
        "import koji, sys\n\
         URL = 'https://127.0.0.1:{port}/kojihub'\n\
         CA = {ca:?}\n\
         def session(cert=None):\n\
         \x20   opts = {{'serverca': CA}}\n\
         \x20   if cert: opts['cert'] = cert\n\
         \x20   return koji.ClientSession(URL, opts=opts)\n\
         def fault(f):\n\
         \x20   try:\n\
         \x20       f()\n\
         \x20       return 'no fault'\n\
         \x20   except koji.GenericError as e:\n\
         \x20       return '%s: %s' % (type(e).__name__, e)\n\
         {body}\n",
        port = hub.port(),
        ca = certs.p("ca.crt"),
    );
    let (code, out, err) = hub.python(&script);
    assert_eq!(code, 0, "python failed:\n{out}\n{err}");
    out
}

#[test]
fn koji_cli_logs_in_with_a_client_certificate() {
    let certs = Certs::make("builder-x");
    let Some(hub) = tls_hub(&certs, None) else {
        return;
    };
    // moshimoshi: alice is created on her first sslLogin (LoginCreatesUser) and greeted.
    let out = hub.koji_ok(&["-p", "ssl", "moshimoshi"]);
    assert!(out.contains("alice!"), "{out}");
    assert!(
        out.contains("Authenticated via client certificate"),
        "{out}"
    );
    let out = hub.koji_ok(&["-p", "ssl", "call", "getLoggedInUser"]);
    assert!(out.contains("'name': 'alice'"), "{out}");
    assert!(out.contains("'authtype': 2"), "{out}");

    // The password profile and anonymous calls work over the same HTTPS listener.
    let out = hub.koji_ok(&["-p", "koji", "call", "getLoggedInUser"]);
    assert!(out.contains("'authtype': 0"), "{out}");
    let out = hub.koji_ok(&["-p", "anon", "list-users"]);
    assert!(out.contains("alice"), "{out}");

    // A state-changing command with the certificate: once alice may, she creates a tag.
    hub.koji_ok(&["-p", "koji", "grant-permission", "tag", "alice"]);
    hub.koji_ok(&["-p", "ssl", "add-tag", "ssl-made-tag"]);
    let out = hub.koji_ok(&["-p", "anon", "taginfo", "ssl-made-tag"]);
    assert!(out.contains("Tag: ssl-made-tag"), "{out}");

    // A certificate from another CA is refused at the handshake: no session, no user.
    let (code, out, err) = hub.koji(&["-p", "mallory", "call", "getLoggedInUser"]);
    assert_ne!(code, 0, "mallory got in:\n{out}\n{err}");
    let log = hub.log();
    assert!(
        log.contains("TLS handshake failed") && log.contains("UnknownIssuer"),
        "hub log:\n{log}"
    );
}

#[test]
fn ssl_login_refusals_proxying_and_options() {
    let certs = Certs::make("builder-x");
    let Some(hub) = tls_hub(
        &certs,
        Some("proxy_dns = [\"CN=kojiweb,OU=web,O=Test Org\"]\nlogin_creates_user = false\n"),
    ) else {
        return;
    };
    hub.koji_ok(&["-p", "koji", "add-user", "alice"]);
    hub.koji_ok(&["-p", "koji", "add-user", "carol"]);
    let out = py(
        &hub,
        &certs,
        &format!(
            "# No client certificate on the TLS connection: Koji's text for SSL_CLIENT_VERIFY=NONE.\n\
             s = session()\n\
             print('nocert', fault(lambda: s._callMethod('sslLogin', [], {{}})))\n\
             # Unknown user without LoginCreatesUser.\n\
             s = session({bob:?})\n\
             print('bob', fault(lambda: s.ssl_login()))\n\
             # alice logs in; with exclusive=True the session is exclusive.\n\
             s = session({alice:?})\n\
             s.ssl_login()\n\
             print('alice', s.getLoggedInUser()['name'], s.getSessionInfo()['exclusive'])\n\
             print('again', fault(lambda: s._callMethod('sslLogin', [], {{}})))\n\
             s2 = session({alice:?})\n\
             sinfo = s2._callMethod('sslLogin', [], {{'exclusive': True}})\n\
             s2.setSession(sinfo)\n\
             print('exclusive', s2.getSessionInfo()['exclusive'])\n\
             print('locked', fault(lambda: s.getLoggedInUser()))\n\
             # proxyuser: only for a DN in ProxyDNs.\n\
             s = session({alice:?})\n\
             print('alice-proxy', fault(lambda: s.ssl_login(proxyuser='carol')))\n\
             s = session({web:?})\n\
             s.ssl_login(proxyuser='carol')\n\
             print('proxied', s.getLoggedInUser()['name'])\n",
            bob = certs.p("bob.pem"),
            alice = certs.p("alice.pem"),
            web = certs.p("kojiweb.pem"),
        ),
    );
    let line = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or_else(|| panic!("no {k} line in:\n{out}"))
            .to_string()
    };
    assert_eq!(line("nocert"), "AuthError: could not verify client: NONE");
    assert!(line("bob").contains("Unknown user: bob"), "{out}");
    // Koji's sessions.exclusive is NULL unless exclusive.
    assert_eq!(line("alice"), "alice None");
    assert_eq!(line("again"), "AuthError: Already logged in");
    assert_eq!(line("exclusive"), "True");
    assert!(line("locked").starts_with("AuthLockError"), "{out}");
    assert!(
        line("alice-proxy").contains("CN=alice,O=Test Org is not authorized to login other users"),
        "{out}"
    );
    assert_eq!(line("proxied"), "carol");

    // Blocked users are refused, as with passwords.
    hub.koji_ok(&["-p", "koji", "disable-user", "alice"]);
    let (code, out, err) = hub.koji(&["-p", "ssl", "call", "getLoggedInUser"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("logins by alice are not allowed"), "{err}");
}

#[test]
fn builder_logs_in_with_a_certificate_and_runs_a_task() {
    let host = "certhost";
    let certs = Certs::make(host);
    let Some(hub) = tls_hub(&certs, None) else {
        return;
    };
    register_host(&hub, host, &["x86_64", "noarch"]);
    let workdir = hub.dir().join("builder-certhost");
    let log = hub.dir().join("builder-certhost.log");
    let out = std::fs::File::create(&log).expect("builder log");
    let err = out.try_clone().expect("clone");
    let child = Command::new(common::containerbuild_bin())
        .args(["builder", "--hub"])
        .arg(format!("https://127.0.0.1:{}/kojihub", hub.port()))
        .args(["--user", host, "--cert"])
        .arg(certs.path("host.pem"))
        .arg("--serverca")
        .arg(certs.path("ca.crt"))
        .arg("--workdir")
        .arg(&workdir)
        .args(["--poll-interval", "1"])
        .env("CONTAINERBUILD_LOG", "info")
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn builder");
    let mut b = BuilderProc::adopt(child, host, log, workdir);
    let out = hub.koji_ok(&[
        "-p", "koji", "call", "--python", "makeTask", "'sleep'", "[1]",
    ]);
    let id: i64 = out
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{out:?}: {e}"));
    wait_for(Duration::from_secs(60), "the sleep task to close", || {
        let (_, out, _) = hub.koji(&["-p", "anon", "call", "getTaskInfo", &id.to_string()]);
        out.contains("'state': 2").then_some(())
    });
    // It ran on the certificate's host, whose session is an SSL one (authtype 2).
    let out = hub.koji_ok(&["-p", "anon", "call", "getTaskInfo", &id.to_string()]);
    let host_id = hub.koji_ok(&["-p", "anon", "call", "getHost", host]);
    let want = host_id
        .split("'id': ")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .unwrap_or_else(|| panic!("no host id in {host_id}"));
    assert!(
        out.contains(&format!("'host_id': {want}")),
        "{out}\n{host_id}"
    );
    assert_eq!(b.terminate(Duration::from_secs(20)), Some(0), "{}", b.log());
    assert!(b.log().contains("builder started"), "{}", b.log());
}

/// Failed logins are throttled per user and per address; a success clears only its own
/// address's failures. Addresses 127.0.0.1 and 127.0.0.2 are both loopback.
#[test]
fn failed_logins_are_throttled() {
    let Some(hub) = Hub::start_with_config("login_max_failures = 3\nlogin_failure_window = 120\n")
    else {
        return;
    };
    hub.add_user_cli("alice", "right-password", false);
    hub.add_user_cli("bob", "bobs-password", false);
    // Three wrong passwords for alice with the koji CLI...
    for _ in 0..3 {
        let (code, _, err) = hub.koji_as("alice", "wrong", &["call", "getLoggedInUser"]);
        assert_ne!(code, 0);
        assert!(err.contains("invalid username or password"), "{err}");
    }
    // ...and the right one is no longer checked.
    let (code, _, err) = hub.koji_as("alice", "right-password", &["call", "getLoggedInUser"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("too many failed logins for user alice; wait"),
        "{err}"
    );
    let secs: u64 = err
        .split("wait ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait time in {err}"));
    assert!((100..=120).contains(&secs), "{err}");

    // 127.0.0.1 made three failures, so it is refused for bob too. bob: two failures from
    // 127.0.0.2, a success from 127.0.0.3 (which does not reset 127.0.0.2's), one more failure
    // from 127.0.0.2 reaches the limit for bob, wherever he comes from.
    let script = format!(
        "import http.client, xmlrpc.client\n\
         def login(src, user, pw):\n\
         \x20   c = http.client.HTTPConnection('127.0.0.1', {port}, source_address=(src, 0))\n\
         \x20   c.request('POST', '/kojihub', xmlrpc.client.dumps((user, pw), 'login'), {{'Content-Type': 'text/xml'}})\n\
         \x20   try:\n\
         \x20       xmlrpc.client.loads(c.getresponse().read())\n\
         \x20       return 'ok'\n\
         \x20   except xmlrpc.client.Fault as f:\n\
         \x20       return f.faultString\n\
         print(login('127.0.0.1', 'bob', 'bobs-password'))\n\
         print(login('127.0.0.2', 'bob', 'x'))\n\
         print(login('127.0.0.2', 'bob', 'x'))\n\
         print(login('127.0.0.3', 'bob', 'bobs-password'))\n\
         print(login('127.0.0.2', 'bob', 'x'))\n\
         print(login('127.0.0.3', 'bob', 'bobs-password'))\n",
        port = hub.port()
    );
    let (code, out, err) = hub.python(&script);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(
        lines[0].starts_with("too many failed logins from 127.0.0.1; wait"),
        "{out}"
    );
    assert_eq!(lines[1], "invalid username or password");
    assert_eq!(lines[3], "ok");
    assert_eq!(lines[4], "invalid username or password");
    assert!(
        lines[5].starts_with("too many failed logins for user bob; wait"),
        "{out}"
    );
}
