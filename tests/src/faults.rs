//! Fault injection for the tests that prove no event is lost and no DM is doubled while the
//! infrastructure fails: a TCP proxy that cuts a service off, a private Redis that can be
//! restarted (losing its data), and binaries run as separate processes that can be killed.
//! The benchmarks use the same proxy to count round trips and read the processes' CPU time.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a fresh redis-server may take to answer PING.
const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards TCP connections on a local port to a target, and can cut them all off at once, as
/// when the database becomes unreachable. Clones share one proxy, so a test can cut and restore
/// from another task; it stops, closing its connections, when the last clone is dropped.
#[derive(Clone)]
pub struct TcpProxy(Arc<ProxyInner>);

struct ProxyInner {
    addr: SocketAddr,
    /// `true` while traffic flows. Connections close when it turns `false` or this drops.
    up: watch::Sender<bool>,
    accept: JoinHandle<()>,
    round_trips: Arc<AtomicU64>,
}

impl Drop for ProxyInner {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, rx) = watch::channel(true);
        let round_trips = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, target, rx, Arc::clone(&round_trips)));
        Ok(Self(Arc::new(ProxyInner {
            addr,
            up,
            accept,
            round_trips,
        })))
    }

    /// A proxy in front of the service `url` names (its host must resolve locally), and
    /// `url` rewritten to reach the service through it.
    pub async fn in_front_of(url: &str) -> anyhow::Result<(Self, String)> {
        let mut url = reqwest::Url::parse(url)?;
        let target = url
            .socket_addrs(|| None)?
            .into_iter()
            .next()
            .with_context(|| format!("{url} names no address"))?;
        let proxy = Self::start(target).await?;
        url.set_ip_host(proxy.addr().ip())
            .map_err(|()| anyhow::anyhow!("{url} cannot take an IP host"))?;
        url.set_port(Some(proxy.addr().port()))
            .map_err(|()| anyhow::anyhow!("{url} cannot take a port"))?;
        Ok((proxy, url.to_string()))
    }

    /// Round trips so far over all connections: each time a client spoke after its server
    /// had (a pipelined burst of requests counts once, as it costs one wait).
    pub fn round_trips(&self) -> u64 {
        self.0.round_trips.load(Ordering::Relaxed)
    }

    /// The address clients connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Drops every open connection and closes new ones on accept until [`Self::restore`].
    pub fn cut(&self) {
        self.0.up.send_replace(false);
    }

    /// Lets new connections through again (the ones cut stay closed, as after a real outage).
    pub fn restore(&self) {
        self.0.up.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    up: watch::Receiver<bool>,
    round_trips: Arc<AtomicU64>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // Out of descriptors or the like: back off rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // While cut the port stays bound, so clients keep their URL, but nothing gets through.
        if !*up.borrow() {
            drop(client);
            continue;
        }
        tokio::spawn(forward(
            client,
            target,
            up.clone(),
            Arc::clone(&round_trips),
        ));
    }
}

async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut up: watch::Receiver<bool>,
    round_trips: Arc<AtomicU64>,
) {
    let pipe = async {
        let mut server = TcpStream::connect(target).await?;
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        // Set when the server spoke: the client's next bytes start a new round trip.
        let answered = AtomicBool::new(true);
        let up = copy(client_read, server_write, |_| {
            if answered.swap(false, Ordering::Relaxed) {
                round_trips.fetch_add(1, Ordering::Relaxed);
            }
        });
        let down = copy(server_read, client_write, |_| {
            answered.store(true, Ordering::Relaxed);
        });
        tokio::try_join!(up, down)
    };
    // Returning drops both streams, which is what closes the connection on a cut. `wait_for`
    // also returns when the proxy is dropped (the sender is gone).
    tokio::select! {
        _ = pipe => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}

/// Copies `from` to `to` until `from` ends, telling `seen` of each read.
async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    seen: impl Fn(usize),
) -> io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        seen(n);
        to.write_all(&buf[..n]).await?;
    }
}

/// A redis-server of one test's own, without persistence, so that a restart loses all data.
pub struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub async fn start() -> anyhow::Result<Self> {
        // Another process could take the port between the listener dropping and redis binding
        // it; that shows as redis-server exiting with its own message.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = spawn_redis(port).await?;
        Ok(Self { port, child })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills redis-server (SIGKILL), stays down for `down_for`, then starts it again on the same
    /// port, empty, and waits until it answers.
    pub async fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        self.child.kill().await.context("killing redis-server")?;
        tokio::time::sleep(down_for).await;
        self.child = spawn_redis(self.port).await?;
        Ok(())
    }
}

async fn spawn_redis(port: u16) -> anyhow::Result<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting redis-server (is it on PATH?)")?;
    if let Err(e) = wait_redis_ready(&mut child, port).await {
        // Its own output says why (port taken, bad option); it is small, as it never ran.
        let _ = child.start_kill();
        let out = child.wait_with_output().await?;
        bail!(
            "{e:#}; redis-server said: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Read its output from here on, so that it can never block on a full pipe.
    log_lines(child.stdout.take(), port);
    log_lines(child.stderr.take(), port);
    Ok(child)
}

async fn wait_redis_ready(child: &mut Child, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + REDIS_READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("redis-server on port {port} exited with {status} before it was ready");
        }
        // PING rather than a bare connect: it proves this is a redis that serves commands.
        if redis_pings(port).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("redis-server on port {port} did not answer PING within {REDIS_READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn redis_pings(port: u16) -> bool {
    let ping = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0; 7];
        stream.read_exact(&mut reply).await?;
        io::Result::Ok(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Ok(true))
    )
}

fn log_lines(output: Option<impl AsyncRead + Unpin + Send + 'static>, port: u16) {
    if let Some(output) = output {
        tokio::spawn(async move {
            let mut lines = BufReader::new(output).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(port, "redis-server: {line}");
            }
        });
    }
}

/// A binary run as a separate OS process, so a test can SIGKILL or SIGTERM it as the platform
/// would. Killed when dropped.
pub struct Proc {
    child: Child,
    /// Taken at spawn: `Child::id` is gone once the process has been waited for.
    pid: u32,
    log: PathBuf,
}

impl Proc {
    /// Runs `bin` with the test's environment plus `env`, appending stdout and stderr to `log`.
    pub fn spawn(
        bin: &Path,
        args: &[&str],
        env: &HashMap<String, String>,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log {}", log.display()))?;
        let child = Command::new(bin)
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the spawned process has no pid")?;
        Ok(Self {
            child,
            pid,
            log: log.to_owned(),
        })
    }

    /// SIGKILL, as on a crash or an OOM kill, and waits for it. A process that already exited
    /// is left as it is; either way its exit status is returned.
    pub async fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.child.kill().await?;
        Ok(self.child.wait().await?)
    }

    /// SIGTERM, as on a deploy or a scale-in.
    pub async fn sigterm(&mut self) -> anyhow::Result<()> {
        self.signal("TERM").await
    }

    /// Freezes the process for `pause` (SIGSTOP, then SIGCONT), as a host that stalls it:
    /// CPU starvation, a long GC pause of a neighbour, a VM steal.
    pub async fn stall(&mut self, pause: Duration) -> anyhow::Result<()> {
        self.signal("STOP").await?;
        tokio::time::sleep(pause).await;
        self.signal("CONT").await
    }

    /// Sends `SIG{name}` through the `kill` command, as sending a signal directly needs
    /// `unsafe` (which the workspace forbids).
    async fn signal(&mut self, name: &str) -> anyhow::Result<()> {
        // Not yet waited for, so the pid cannot have been reused by another process.
        if let Some(status) = self.child.try_wait()? {
            bail!("process {} already exited with {status}", self.pid);
        }
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .await
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{name} {} failed with {status}", self.pid);
        }
        Ok(())
    }

    /// What the process has logged so far.
    pub fn log_text(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(&self.log)
            .with_context(|| format!("reading log {}", self.log.display()))
    }

    /// CPU time (user and system) the process has used so far, from `/proc`.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        crate::cpu::process_seconds(self.pid, false)
    }

    /// The process's peak resident set so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc status")
    }

    /// Waits for the process to exit on its own, failing after `timeout` (it keeps running).
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!(
                "process {} did not exit within {timeout:?} (log: {})",
                self.pid,
                self.log.display()
            ),
        }
    }
}

/// A binary of the workspace, from the target directory of the running test executable.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe
        .parent()
        .context("the test executable has no directory")?;
    // Tests run from target/<profile>/deps; cargo puts binaries in target/<profile>.
    if dir.ends_with("deps") {
        dir = dir.parent().context("deps has no parent directory")?;
    }
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` first",
            bin.display()
        );
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;
    use crate::harness::{eventually, tag};

    const IO_TIMEOUT: Duration = Duration::from_secs(1);

    /// A server that echoes every connection's bytes back.
    async fn echo_server() -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Ok(addr)
    }

    async fn echoes(stream: &mut TcpStream, msg: &[u8]) -> anyhow::Result<()> {
        stream.write_all(msg).await?;
        let mut back = vec![0; msg.len()];
        tokio::time::timeout(IO_TIMEOUT, stream.read_exact(&mut back)).await??;
        assert_eq!(back, msg);
        Ok(())
    }

    /// Whether the peer closed: EOF or an error, rather than data or silence.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buf = [0; 16];
        matches!(
            tokio::time::timeout(IO_TIMEOUT, stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proxy_forwards_cuts_and_restores() -> anyhow::Result<()> {
        let proxy = TcpProxy::start(echo_server().await?).await?;
        let mut before = TcpStream::connect(proxy.addr()).await?;
        echoes(&mut before, b"hello").await?;

        // Cut from another task through a clone, as a fault test would.
        let remote = proxy.clone();
        tokio::spawn(async move { remote.cut() }).await?;
        assert!(
            closed(&mut before).await,
            "an open connection survived the cut"
        );
        // Refused or closed straight away are both fine.
        if let Ok(mut during) = TcpStream::connect(proxy.addr()).await {
            assert!(closed(&mut during).await, "a new connection got through");
        }

        proxy.restore();
        let mut after = TcpStream::connect(proxy.addr()).await?;
        echoes(&mut after, b"again").await?;

        // Dropping the proxy closes what it still forwards.
        drop(proxy);
        assert!(
            closed(&mut after).await,
            "the connection outlived the proxy"
        );
        Ok(())
    }

    /// Sends one inline command and reads the reply, which should be `expected`.
    async fn redis(url: &str, command: &str, expected: &str) -> anyhow::Result<()> {
        let addr = url.trim_start_matches("redis://");
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await?;
        let mut reply = Vec::new();
        let mut buf = [0; 64];
        // Read until the expected length (or EOF, or a pause) so a short reply shows as is.
        while reply.len() < expected.len() {
            match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => reply.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&reply),
            expected,
            "reply to {command}"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_restart_keeps_port_and_loses_data() -> anyhow::Result<()> {
        let mut server = RedisServer::start().await?;
        let url = server.url();
        redis(&url, "PING", "+PONG\r\n").await?;
        redis(&url, "SET fault-key v", "+OK\r\n").await?;
        redis(&url, "GET fault-key", "$1\r\nv\r\n").await?;

        server.restart(Duration::from_millis(100)).await?;
        assert_eq!(server.url(), url);
        redis(&url, "PING", "+PONG\r\n").await?;
        redis(&url, "GET fault-key", "$-1\r\n").await?;
        Ok(())
    }

    fn log_path() -> PathBuf {
        std::env::temp_dir().join(format!("igflow-faults-{}.log", tag()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proc_logs_env_and_exits_on_sigterm() -> anyhow::Result<()> {
        let log = log_path();
        // Traps TERM first, then says it is ready, so the signal cannot come before the trap.
        let script = r#"trap 'echo "term"; exit 3' TERM; echo "ready $FAULT_VAR"; while :; do sleep 0.05; done"#;
        let env = HashMap::from([("FAULT_VAR".to_owned(), "set".to_owned())]);
        let mut proc = Proc::spawn(Path::new("sh"), &["-c", script], &env, &log)?;
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        eventually("the script to start", Duration::from_secs(2), || {
            let ready = read_log().contains("ready set");
            async move { Ok(ready) }
        })
        .await?;

        assert!(proc.wait_exit(Duration::from_millis(100)).await.is_err());
        proc.sigterm().await?;
        let status = proc.wait_exit(Duration::from_secs(2)).await?;
        assert_eq!(status.code(), Some(3));
        assert!(read_log().contains("term"));
        assert!(proc.sigterm().await.is_err(), "signalled an exited process");
        std::fs::remove_file(&log)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proc_kill9() -> anyhow::Result<()> {
        let log = log_path();
        let mut proc = Proc::spawn(Path::new("sleep"), &["30"], &HashMap::new(), &log)?;
        let status = proc.kill9().await?;
        assert_eq!(status.signal(), Some(9));
        // Again on the exited process: the same status, no error.
        assert_eq!(proc.kill9().await?.signal(), Some(9));
        std::fs::remove_file(&log)?;
        Ok(())
    }

    #[test]
    fn workspace_bin_says_how_to_build_a_missing_binary() {
        let err = workspace_bin("igflow-no-such-binary").err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("cargo build --workspace --bins"),
            "{message}"
        );
    }
}
