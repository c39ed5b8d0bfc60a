//! Starting and stopping DynamoDB Local: the official AWS engine, a Java program that
//! `tools/install.sh dynamodb-local` fetches into `.tools/dynamodb-local`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DynamoLocalError {
    #[error(
        "DynamoDB Local is not installed at {0}: run `tools/install.sh dynamodb-local` (make dev and make test do), or set DYNAMODB_ENDPOINT to a running one"
    )]
    NotInstalled(PathBuf),
    #[error("cannot start `java` for DynamoDB Local (Java 17 or newer must be on PATH): {0}")]
    Java(std::io::Error),
    #[error(
        "port {0} on 127.0.0.1 is held by another process: stop it, or set DYNAMODB_ENDPOINT to use a DynamoDB you already run"
    )]
    PortHeld(u16),
    #[error("DynamoDB Local did not accept connections on port {port} within {secs} s (exit status: {status})")]
    NotReady { port: u16, secs: u64, status: String },
    #[error("no free port on 127.0.0.1: {0}")]
    NoPort(std::io::Error),
}

/// Where DynamoDB Local keeps its data.
#[derive(Debug, Clone)]
pub enum Storage {
    InMemory,
    /// A folder for its database file, kept across restarts.
    Dir(PathBuf),
}

/// A running DynamoDB Local, stopped when dropped.
#[derive(Debug)]
pub struct DynamoDbLocal {
    child: Child,
    port: u16,
}

impl DynamoDbLocal {
    /// `DYNAMODB_LOCAL_DIR`, or `.tools/dynamodb-local` in this repository.
    pub fn install_dir() -> PathBuf {
        std::env::var_os("DYNAMODB_LOCAL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::repo_root().join(".tools/dynamodb-local"))
    }

    /// Starts DynamoDB Local on `port` (a free one when `None`) and waits until it accepts
    /// connections. `-sharedDb` keeps one database whatever the credentials and region.
    pub fn start(port: Option<u16>, storage: Storage) -> Result<Self, DynamoLocalError> {
        let dir = Self::install_dir();
        let jar = dir.join("DynamoDBLocal.jar");
        if !jar.is_file() {
            return Err(DynamoLocalError::NotInstalled(dir));
        }
        let port = match port {
            Some(p) => {
                if TcpListener::bind(("127.0.0.1", p)).is_err() {
                    return Err(DynamoLocalError::PortHeld(p));
                }
                p
            }
            None => free_port()?,
        };
        let mut cmd = Command::new("java");
        // It writes a metadata file into its working directory: keep that out of the tree.
        cmd.current_dir(&dir);
        cmd.arg(format!("-Djava.library.path={}", dir.join("DynamoDBLocal_lib").display()))
            // A small heap is plenty for tests and keeps two cores free for the build.
            .args(["-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-jar"])
            .arg(&jar)
            .args(["-sharedDb", "-port", &port.to_string()]);
        match &storage {
            Storage::InMemory => {
                cmd.arg("-inMemory");
            }
            Storage::Dir(d) => {
                let _ = std::fs::create_dir_all(d);
                cmd.arg("-dbPath").arg(d);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(DynamoLocalError::Java)?;
        let mut me = DynamoDbLocal { child, port };
        me.wait_ready(Duration::from_secs(60))?;
        Ok(me)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), DynamoLocalError> {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > limit {
                let status = exited.map(|s| s.to_string()).unwrap_or_else(|| "still running".into());
                self.stop();
                return Err(DynamoLocalError::NotReady { port: self.port, secs: limit.as_secs(), status });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, DynamoLocalError> {
    let l = TcpListener::bind(("127.0.0.1", 0)).map_err(DynamoLocalError::NoPort)?;
    l.local_addr().map(|a| a.port()).map_err(DynamoLocalError::NoPort)
}

/// True when `pid` is a live DynamoDB Local (so a PID file may be trusted before killing).
pub fn is_dynamodb_local(pid: u32) -> bool {
    std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("DynamoDBLocal.jar"))
        .unwrap_or(false)
}
