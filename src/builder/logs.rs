//! Task logs: files in the task's work directory, uploaded to the hub while they grow.
//!
//! Like kojid's `incremental_upload`, each round sends the part of every `*.log` file that grew
//! since the last round with `rawUpload(..., overwrite=True)` at the offset already uploaded, in
//! chunks of at most 64 KiB, to the task's output directory `tasks/<id % 10000>/<id>`. So
//! `koji watch-logs` shows a log while the task runs.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::client::{ClientError, KojiClient};

/// Largest chunk of one `rawUpload` (Koji's incremental upload uses 64 KiB).
pub const CHUNK: usize = 64 * 1024;

/// The hub path of a task's outputs, relative to its work directory.
pub fn task_upload_path(task_id: i64) -> String {
    format!("tasks/{}/{}", task_id % 10000, task_id)
}

/// An append-only log file of a task (`<task workdir>/<name>.log`).
#[derive(Debug, Clone)]
pub struct TaskLog {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl TaskLog {
    /// Opens (creating) `<dir>/<name>.log` for appending. `name` must be a plain file stem.
    pub fn open(dir: &Path, name: &str) -> std::io::Result<TaskLog> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid log name {name:?}"),
            ));
        }
        let path = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(TaskLog {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, stamped with the UTC time (a newline is added).
    pub fn line(&self, text: &str) -> std::io::Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // Stamped like Koji's `*_time` strings, so a reader can tell when the line was written.
        let stamp = crate::xmlrpc::time::koji_time(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        let mut buf = Vec::with_capacity(stamp.len() + text.len() + 2);
        buf.extend_from_slice(stamp.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
        f.write_all(&buf)
    }

    /// Appends raw bytes.
    pub fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(data)
    }

    /// A second handle on the file, e.g. for a child's stdout/stderr.
    pub fn try_clone_file(&self) -> std::io::Result<std::fs::File> {
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_clone()
    }
}

/// Uploads the grown part of every log of one task.
pub struct LogUploader {
    client: Arc<KojiClient>,
    task_id: i64,
    dir: PathBuf,
    remote: String,
    /// Bytes of each file the hub already has.
    sent: HashMap<String, u64>,
    /// Files whose last round failed (to log a failure once, not every half second).
    failing: HashMap<String, String>,
}

impl LogUploader {
    pub fn new(client: Arc<KojiClient>, task_id: i64, dir: PathBuf) -> LogUploader {
        LogUploader {
            client,
            task_id,
            dir,
            remote: task_upload_path(task_id),
            sent: HashMap::new(),
            failing: HashMap::new(),
        }
    }

    /// One round: uploads what grew in every `*.log` file. Errors are logged (once per file
    /// until it recovers) and the file is retried in the next round from the same offset.
    pub async fn sync(&mut self) {
        let mut names = Vec::new();
        if let Ok(mut rd) = tokio::fs::read_dir(&self.dir).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") && e.file_type().await.is_ok_and(|t| t.is_file()) {
                    names.push(name);
                }
            }
        }
        names.sort();
        for name in names {
            match self.sync_file(&name).await {
                Ok(()) => {
                    if self.failing.remove(&name).is_some() {
                        tracing::info!(task_id = self.task_id, file = %name, "log upload recovered");
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    if self.failing.get(&name) != Some(&msg) {
                        tracing::warn!(task_id = self.task_id, file = %name, error = %msg, "log upload failed");
                        self.failing.insert(name, msg);
                    }
                }
            }
        }
    }

    async fn sync_file(&mut self, name: &str) -> Result<(), ClientError> {
        let path = self.dir.join(name);
        let io_err = |e: std::io::Error| ClientError::Protocol {
            method: "rawUpload".into(),
            detail: format!("reading {}: {e}", path.display()),
        };
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(e)),
        };
        let size = f.metadata().await.map_err(io_err)?.len();
        let mut offset = self.sent.get(name).copied().unwrap_or(0);
        if size < offset {
            // Truncated or replaced: start over (overwrite truncates on the hub).
            offset = 0;
        }
        if size == offset {
            return Ok(());
        }
        f.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io_err)?;
        let mut buf = vec![0u8; CHUNK];
        while offset < size {
            let want = usize::try_from(size - offset).unwrap_or(CHUNK).min(CHUNK);
            let mut got = 0;
            while got < want {
                let n = f.read(&mut buf[got..want]).await.map_err(io_err)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got == 0 {
                break; // shrank while reading; the next round starts over
            }
            self.client
                .raw_upload(&self.remote, name, offset, &buf[..got], true)
                .await?;
            offset += got as u64;
            self.sent.insert(name.to_string(), offset);
        }
        Ok(())
    }
}
