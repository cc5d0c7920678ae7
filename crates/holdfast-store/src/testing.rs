//! A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries
//! (`/usr/lib/postgresql/<version>/bin`, or `HOLDFAST_PG_BIN`), a fresh cluster in a temp
//! directory, a free loopback port, stopped and deleted on drop. Run as root, the server runs
//! as the `postgres` user (initdb refuses root). `scripts/install-postgres` installs the
//! binaries on a fresh machine.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running temporary PostgreSQL.
#[derive(Debug)]
pub struct TempPostgres {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    url: String,
    /// The server's options (`pg_ctl -o`), to start it again after [`TempPostgres::stop`].
    opts: String,
}

fn find_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("HOLDFAST_PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no PostgreSQL under /usr/lib/postgresql ({e}): run scripts/install-postgres or set HOLDFAST_PG_BIN"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).ok_or_else(|| {
        "no initdb under /usr/lib/postgresql/*/bin: run scripts/install-postgres".to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl TempPostgres {
    /// Starts a server. `durable: false` turns fsync off (tests); benchmarks keep defaults.
    pub fn start(durable: bool) -> Result<TempPostgres, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = find_bin()?;
        let dir = std::env::temp_dir().join(format!(
            "holdfast-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let as_postgres = is_root();
        if as_postgres {
            run(
                Command::new("chown").arg("postgres:postgres").arg(&dir),
                "chown",
            )?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut pg = TempPostgres {
            bin,
            dir,
            as_postgres,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            opts: String::new(),
        };
        let data = pg.dir.join("data");
        pg.run_pg(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        )?;
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} {}",
            pg.dir.display(),
            if durable {
                ""
            } else {
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            }
        );
        pg.opts = opts;
        if let Err(e) = pg.start_again() {
            pg.url.clear();
            return Err(e);
        }
        pg.watchdog(&data);
        Ok(pg)
    }

    /// Stops the server as an operator's restart does (`pg_ctl stop -m fast`: every session
    /// is ended, open transactions are rolled back); [`TempPostgres::start_again`] brings it
    /// back on the same port with the same data.
    pub fn stop(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        self.run_pg("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"])
    }

    /// Starts the (stopped) server again.
    pub fn start_again(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        self.run_pg(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-t",
                "30",
                "-o",
                &self.opts,
                "start",
            ],
        )
        .map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\nserver log:\n{tail}")
        })
    }

    /// Stops the server when this process ends, however it ends: a server held in a
    /// `static` is never dropped, and a killed test runs no destructor.
    fn watchdog(&self, data: &Path) {
        let stop = format!(
            "{}{} -D '{}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{}'",
            if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            data.display(),
            self.dir.display()
        );
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 0.5; done; {stop}",
            std::process::id()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        run(cmd.args(args), tool)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if !self.url.is_empty() {
            let data = self.dir.join("data");
            let _ = self.run_pg(
                "pg_ctl",
                &["-D", path(&data), "-m", "immediate", "-w", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
