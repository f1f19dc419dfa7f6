//! Debian's nginx in front of the app, configured by the sample `deploy/nginx.conf` with only its
//! addresses and its access log's path changed: the tests run behind the configuration operators are given.
//!
//! nginx runs in the foreground (`daemon off`) under a main configuration of the test's own
//! (pid, logs and temporary files in a temporary directory), which includes the sample. Dropping
//! [`Nginx`] stops it with SIGQUIT (a graceful stop: the workers exit with it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sample, as operators get it.
const SAMPLE: &str = include_str!("../../deploy/nginx.conf");

pub struct Nginx {
    child: Child,
    /// `http://127.0.0.1:<port>`: where clients connect.
    pub url: String,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Debian's binary, or `ONRAMP_NGINX`.
fn binary() -> PathBuf {
    std::env::var_os("ONRAMP_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// The sample with its upstream at `app` (`127.0.0.1:<port>`), listening on `port` and writing
/// its access log to `access_log`.
pub fn site_config(app: &str, port: u16, access_log: &Path) -> String {
    site_config_for(&[app], port, access_log)
}

/// The sample with one upstream line for each of `apps`: the processes of one service.
pub fn site_config_for(apps: &[&str], port: u16, access_log: &Path) -> String {
    let line = SAMPLE
        .lines()
        .find(|l| l.trim_start().starts_with("server 127.0.0.1:8080"))
        .expect("the sample's upstream line");
    let servers: Vec<String> = apps
        .iter()
        .map(|a| line.replace("127.0.0.1:8080", a))
        .collect();
    let here = [
        (line, servers.join("\n")),
        (
            "listen 80 default_server;",
            format!("listen 127.0.0.1:{port} default_server;"),
        ),
        (
            "/var/log/nginx/onramp.access.log",
            access_log.display().to_string(),
        ),
    ];
    let mut site = SAMPLE.to_owned();
    for (sample, test) in here {
        assert_eq!(SAMPLE.matches(sample).count(), 1, "the sample's {sample:?}");
        site = site.replace(sample, &test);
    }
    site
}

fn main_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
             client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             include {d}/onramp.conf;\n\
         }}\n"
    )
}

impl Nginx {
    /// nginx on `port` in front of the app listening at `app` (`127.0.0.1:<port>`); answers once
    /// nginx accepts connections.
    pub fn start(app: &str, port: u16) -> Nginx {
        Nginx::start_for(&[app], port)
    }

    /// nginx on `port` in front of every one of `apps` (`127.0.0.1:<port>` each).
    pub fn start_for(apps: &[&str], port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // nginx's workers drop root's rights (to `nobody`) and must reach their temporary files.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let site = site_config_for(apps, port, &dir.path().join("access.log"));
        std::fs::write(dir.path().join("onramp.conf"), site).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), main_config(dir.path())).unwrap();
        let bin = binary();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {bin:?}: {e} (install Debian's nginx or set ONRAMP_NGINX)")
            });
        let nginx = Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
        };
        nginx.wait_until_listening();
        nginx
    }

    fn wait_until_listening(&self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx never listened: {}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The requests nginx passed on, a line each (the sample's `onramp` format: no queries).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// What nginx wrote to its error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: the master stops its workers and exits.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
