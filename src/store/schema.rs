//! Versioned schema migrations, applied in order inside one transaction each.

use rusqlite::Connection;

use super::{Result, StoreError, now_ts};

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a released entry;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    status INTEGER NOT NULL DEFAULT 0,
    usertype INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE user_krb_principals (
    user_id INTEGER NOT NULL REFERENCES users(id),
    krb_principal TEXT NOT NULL UNIQUE
);
CREATE TABLE permissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT
);
CREATE TABLE user_perms (
    user_id INTEGER NOT NULL REFERENCES users(id),
    perm_id INTEGER NOT NULL REFERENCES permissions(id),
    create_event INTEGER NOT NULL,
    PRIMARY KEY (user_id, perm_id)
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    key TEXT NOT NULL,
    authtype INTEGER NOT NULL,
    hostip TEXT,
    master INTEGER REFERENCES sessions(id),
    exclusive INTEGER,
    closed INTEGER NOT NULL DEFAULT 0,
    start_ts REAL NOT NULL,
    update_ts REAL NOT NULL,
    renew_ts REAL,
    callnum INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id, closed);
CREATE INDEX sessions_master ON sessions (master);

CREATE TABLE channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    comment TEXT
);

CREATE TABLE hosts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL UNIQUE REFERENCES users(id),
    name TEXT NOT NULL UNIQUE,
    arches TEXT NOT NULL,
    capacity REAL NOT NULL DEFAULT 2.0,
    description TEXT,
    comment TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    ready INTEGER NOT NULL DEFAULT 0,
    task_load REAL NOT NULL DEFAULT 0.0,
    update_ts REAL,
    data TEXT
);
CREATE TABLE host_channels (
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    PRIMARY KEY (host_id, channel_id)
);
CREATE INDEX host_channels_channel ON host_channels (channel_id);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state INTEGER NOT NULL,
    create_ts REAL NOT NULL,
    start_ts REAL,
    completion_ts REAL,
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    host_id INTEGER REFERENCES hosts(id),
    parent INTEGER REFERENCES tasks(id),
    label TEXT,
    waiting INTEGER,
    awaited INTEGER,
    owner INTEGER NOT NULL REFERENCES users(id),
    method TEXT NOT NULL,
    arch TEXT NOT NULL DEFAULT 'noarch',
    priority INTEGER NOT NULL,
    weight REAL NOT NULL DEFAULT 1.0,
    request TEXT NOT NULL,
    result TEXT
);
CREATE INDEX tasks_state ON tasks (state, priority, create_ts);
CREATE INDEX tasks_parent ON tasks (parent, label);
CREATE INDEX tasks_owner ON tasks (owner, state);
CREATE INDEX tasks_host ON tasks (host_id, state);
CREATE INDEX tasks_method ON tasks (method, state);
CREATE INDEX tasks_channel ON tasks (channel_id, state);
CREATE INDEX tasks_create ON tasks (create_ts);

CREATE TABLE tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    arches TEXT,
    perm_id INTEGER REFERENCES permissions(id),
    locked INTEGER NOT NULL DEFAULT 0,
    maven_support INTEGER NOT NULL DEFAULT 0,
    maven_include_all INTEGER NOT NULL DEFAULT 0,
    extra TEXT NOT NULL DEFAULT '{}',
    create_event INTEGER NOT NULL
);
CREATE TABLE tag_inheritance (
    tag_id INTEGER NOT NULL REFERENCES tags(id),
    parent_id INTEGER NOT NULL REFERENCES tags(id),
    priority INTEGER NOT NULL,
    maxdepth INTEGER,
    intransitive INTEGER NOT NULL DEFAULT 0,
    noconfig INTEGER NOT NULL DEFAULT 0,
    pkg_filter TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tag_id, parent_id)
);
CREATE INDEX tag_inheritance_parent ON tag_inheritance (parent_id);

CREATE TABLE build_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    build_tag INTEGER NOT NULL REFERENCES tags(id),
    dest_tag INTEGER NOT NULL REFERENCES tags(id)
);
CREATE INDEX build_targets_build_tag ON build_targets (build_tag);
CREATE INDEX build_targets_dest_tag ON build_targets (dest_tag);

CREATE TABLE packages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE tag_packages (
    tag_id INTEGER NOT NULL REFERENCES tags(id),
    package_id INTEGER NOT NULL REFERENCES packages(id),
    owner INTEGER NOT NULL REFERENCES users(id),
    blocked INTEGER NOT NULL DEFAULT 0,
    extra_arches TEXT,
    create_event INTEGER NOT NULL,
    PRIMARY KEY (tag_id, package_id)
);
CREATE INDEX tag_packages_package ON tag_packages (package_id);
CREATE INDEX tag_packages_owner ON tag_packages (owner);

CREATE TABLE volumes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);

CREATE TABLE content_generators (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);

CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id INTEGER NOT NULL REFERENCES packages(id),
    version TEXT NOT NULL,
    release TEXT NOT NULL,
    epoch INTEGER,
    draft INTEGER NOT NULL DEFAULT 0,
    state INTEGER NOT NULL,
    task_id INTEGER REFERENCES tasks(id),
    owner INTEGER NOT NULL REFERENCES users(id),
    volume_id INTEGER NOT NULL DEFAULT 0 REFERENCES volumes(id),
    create_event INTEGER NOT NULL,
    creation_ts REAL NOT NULL,
    start_ts REAL,
    completion_ts REAL,
    source TEXT,
    extra TEXT,
    cg_id INTEGER REFERENCES content_generators(id),
    UNIQUE (package_id, version, release)
);
CREATE INDEX builds_task ON builds (task_id);
CREATE INDEX builds_owner ON builds (owner);
CREATE INDEX builds_state ON builds (state);

CREATE TABLE tag_listing (
    tag_id INTEGER NOT NULL REFERENCES tags(id),
    build_id INTEGER NOT NULL REFERENCES builds(id),
    create_event INTEGER NOT NULL,
    owner INTEGER REFERENCES users(id),
    PRIMARY KEY (tag_id, build_id)
);
CREATE INDEX tag_listing_build ON tag_listing (build_id);

CREATE TABLE btypes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE archive_types (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    extensions TEXT NOT NULL,
    compression_type TEXT
);
CREATE TABLE archives (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type_id INTEGER NOT NULL REFERENCES archive_types(id),
    btype_id INTEGER NOT NULL REFERENCES btypes(id),
    build_id INTEGER NOT NULL REFERENCES builds(id),
    buildroot_id INTEGER,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    checksum_type INTEGER NOT NULL,
    metadata_only INTEGER NOT NULL DEFAULT 0,
    extra TEXT,
    arch TEXT
);
CREATE INDEX archives_build ON archives (build_id);
CREATE TABLE archive_components (
    archive_id INTEGER NOT NULL REFERENCES archives(id),
    component_id INTEGER NOT NULL REFERENCES archives(id),
    PRIMARY KEY (archive_id, component_id)
);

CREATE TABLE rpms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id INTEGER REFERENCES builds(id),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    release TEXT NOT NULL,
    epoch INTEGER,
    arch TEXT NOT NULL,
    draft INTEGER NOT NULL DEFAULT 0,
    payloadhash TEXT NOT NULL,
    size INTEGER NOT NULL,
    buildtime INTEGER NOT NULL,
    buildroot_id INTEGER,
    external_repo_id INTEGER NOT NULL DEFAULT 0,
    metadata_only INTEGER NOT NULL DEFAULT 0,
    extra TEXT,
    UNIQUE (name, version, release, arch, external_repo_id)
);
CREATE INDEX rpms_build ON rpms (build_id);
CREATE TABLE archive_rpm_components (
    archive_id INTEGER NOT NULL REFERENCES archives(id),
    rpm_id INTEGER NOT NULL REFERENCES rpms(id),
    PRIMARY KEY (archive_id, rpm_id)
);
CREATE INDEX archive_rpm_components_rpm ON archive_rpm_components (rpm_id);
"#,
    // 2: the task scheduler (Koji's scheduler_* tables). Host data stays in `hosts.data`.
    r#"
CREATE TABLE scheduler_task_refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id),
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    by_host INTEGER NOT NULL DEFAULT 0,
    soft INTEGER NOT NULL DEFAULT 1,
    msg TEXT NOT NULL DEFAULT '',
    ts REAL NOT NULL,
    UNIQUE (task_id, host_id)
);
CREATE INDEX scheduler_task_refusals_host ON scheduler_task_refusals (host_id);

CREATE TABLE scheduler_task_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id),
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    active INTEGER NOT NULL DEFAULT 1,
    create_ts REAL NOT NULL
);
CREATE INDEX scheduler_task_runs_task ON scheduler_task_runs (task_id, active);
CREATE INDEX scheduler_task_runs_active ON scheduler_task_runs (active, task_id);
CREATE INDEX scheduler_task_runs_host ON scheduler_task_runs (host_id);

CREATE TABLE scheduler_log_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER REFERENCES tasks(id),
    host_id INTEGER REFERENCES hosts(id),
    msg_ts REAL NOT NULL,
    msg TEXT NOT NULL
);
CREATE INDEX scheduler_log_messages_task ON scheduler_log_messages (task_id);
CREATE INDEX scheduler_log_messages_host ON scheduler_log_messages (host_id);
CREATE INDEX scheduler_log_messages_ts ON scheduler_log_messages (msg_ts);
"#,
    // 3: content-generator imports (Koji's cg_users, build_reservations, build_types, buildroot,
    // buildroot_tools_info, buildroot_listing, buildroot_archives) plus the RPM components of
    // image archives that match no RPM the hub knows, which Koji drops and this hub keeps.
    r#"
CREATE TABLE cg_users (
    cg_id INTEGER NOT NULL REFERENCES content_generators(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    create_event INTEGER NOT NULL,
    creator_id INTEGER REFERENCES users(id),
    PRIMARY KEY (cg_id, user_id)
);
CREATE INDEX cg_users_user ON cg_users (user_id);

CREATE TABLE build_reservations (
    build_id INTEGER PRIMARY KEY REFERENCES builds(id),
    token TEXT NOT NULL,
    created_ts REAL NOT NULL
);

CREATE TABLE build_types (
    build_id INTEGER NOT NULL REFERENCES builds(id),
    btype_id INTEGER NOT NULL REFERENCES btypes(id),
    PRIMARY KEY (build_id, btype_id)
);
CREATE INDEX build_types_btype ON build_types (btype_id, build_id);
CREATE INDEX builds_cg ON builds (cg_id);

CREATE TABLE buildroots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    br_type INTEGER NOT NULL,
    cg_id INTEGER REFERENCES content_generators(id),
    cg_version TEXT,
    container_type TEXT,
    container_arch TEXT,
    host_os TEXT,
    host_arch TEXT,
    extra TEXT
);
CREATE INDEX buildroots_cg ON buildroots (cg_id);
CREATE TABLE buildroot_tools (
    buildroot_id INTEGER NOT NULL REFERENCES buildroots(id),
    tool TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (buildroot_id, tool)
);
CREATE TABLE buildroot_listing (
    buildroot_id INTEGER NOT NULL REFERENCES buildroots(id),
    rpm_id INTEGER NOT NULL REFERENCES rpms(id),
    is_update INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (buildroot_id, rpm_id)
);
CREATE INDEX buildroot_listing_rpm ON buildroot_listing (rpm_id);
CREATE TABLE buildroot_archives (
    buildroot_id INTEGER NOT NULL REFERENCES buildroots(id),
    archive_id INTEGER NOT NULL REFERENCES archives(id),
    project_dep INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (buildroot_id, archive_id)
);
CREATE INDEX buildroot_archives_archive ON buildroot_archives (archive_id);

CREATE INDEX archives_buildroot ON archives (buildroot_id);
CREATE INDEX archives_btype ON archives (btype_id, build_id);
CREATE INDEX archives_filename ON archives (filename, size);
CREATE INDEX archive_components_component ON archive_components (component_id);
CREATE INDEX rpms_buildroot ON rpms (buildroot_id);

CREATE TABLE archive_unknown_rpms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    archive_id INTEGER NOT NULL REFERENCES archives(id),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    release TEXT NOT NULL,
    epoch INTEGER,
    arch TEXT,
    sigmd5 TEXT,
    size INTEGER,
    buildtime INTEGER,
    extra TEXT
);
CREATE INDEX archive_unknown_rpms_archive ON archive_unknown_rpms (archive_id, id);
"#,
    // 4: what `GET /metrics` reads without scanning: tasks by (state, method) and builds by state,
    // counted by triggers in the transaction that changes them (so a rollback undoes the count
    // too, and writers outside the hub are counted as well), and open sessions by renewal time.
    r#"
CREATE TABLE task_counts (
    state INTEGER NOT NULL,
    method TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (state, method)
) WITHOUT ROWID;
INSERT INTO task_counts (state, method, n) SELECT state, method, count(*) FROM tasks GROUP BY state, method;
CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (state, method, n) VALUES (NEW.state, NEW.method, 1)
        ON CONFLICT (state, method) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER task_counts_update AFTER UPDATE OF state, method ON tasks
WHEN OLD.state IS NOT NEW.state OR OLD.method IS NOT NEW.method BEGIN
    UPDATE task_counts SET n = n - 1 WHERE state = OLD.state AND method = OLD.method;
    INSERT INTO task_counts (state, method, n) VALUES (NEW.state, NEW.method, 1)
        ON CONFLICT (state, method) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE state = OLD.state AND method = OLD.method;
END;

CREATE TABLE build_counts (state INTEGER PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO build_counts (state, n) SELECT state, count(*) FROM builds GROUP BY state;
CREATE TRIGGER build_counts_insert AFTER INSERT ON builds BEGIN
    INSERT INTO build_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER build_counts_update AFTER UPDATE OF state ON builds
WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE build_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO build_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER build_counts_delete AFTER DELETE ON builds BEGIN
    UPDATE build_counts SET n = n - 1 WHERE state = OLD.state;
END;

CREATE INDEX sessions_open ON sessions (closed, coalesce(renew_ts, start_ts));
"#,
];

/// Rows every new database starts with: Koji's default channels, volume, permissions and types.
fn seed(conn: &Connection) -> Result<()> {
    conn.execute("INSERT INTO events (ts) VALUES (?1)", [now_ts()])?;
    conn.execute_batch(
        r#"
INSERT INTO channels (name, description) VALUES ('default', NULL), ('container', 'container builds');
INSERT INTO volumes (id, name) VALUES (0, 'DEFAULT');
INSERT INTO permissions (name, description) VALUES
    ('admin', 'Full administrator access. Perform all actions.'),
    ('appliance', 'Create appliance builds - deprecated.'),
    ('dist-repo', 'Create a dist-repo.'),
    ('host', 'Add, remove, enable, disable hosts and channels.'),
    ('image', 'Start image tasks.'),
    ('image-import', 'Import image archives.'),
    ('livecd', 'Start livecd tasks.'),
    ('maven-import', 'Import maven archives.'),
    ('repo', 'Manage repos: newRepo, repoExpire, repoDelete, repoProblem.'),
    ('sign', 'Import RPM signatures and write signed RPMs.'),
    ('tag', 'Manage packages in tags: add, block, remove, and clone tags.'),
    ('target', 'Add, edit, and remove targets.'),
    ('win-admin', 'The default hub policy rule for "vm" requires this permission to trigger Windows builds.'),
    ('win-import', 'Import win archives.'),
    ('draft-promoter', 'The permission required in the default "draft_promotion" hub policy rule to promote draft build.');
INSERT INTO btypes (id, name) VALUES (1, 'rpm'), (2, 'maven'), (3, 'win'), (4, 'image');
INSERT INTO archive_types (id, name, description, extensions, compression_type) VALUES
    (1, 'tar', 'Tar files', 'tar tar.gz tar.bz2 tar.xz tgz', 'tar'),
    (2, 'zip', 'Zip file', 'zip', 'zip'),
    (3, 'json', 'JSON data', 'json', NULL),
    (4, 'log', 'Log file', 'log', NULL);
"#,
    )?;
    Ok(())
}

/// Brings the database to the newest schema version.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let supported = MIGRATIONS.len() as i64;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        if i == 0 {
            seed(&tx)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
