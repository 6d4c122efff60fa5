//! Runs on hosts over SSH: the inventory (`--inventory FILE` or `--hosts a,b,c`), the
//! preflight of every host, and provisioning (schism's binary and the run's folder).
//!
//! Guarantees: every host is connected and checked before anything is created on any of
//! them, and a host that is unreachable, presents an unknown or changed host key, refuses
//! the login, cannot become root, lacks a binary or has the node port taken refuses the
//! run with one line naming the host and the fix. A host goes into the run's ledger
//! (with its run folder) before anything is created on it, so every exit path — and
//! `schism cleanup` after a SIGKILL — removes the folder, the nodes and the nft table
//! there. The binary is uploaded only when the host's copy is of another build (its
//! size, modification time and inode, recorded next to it).

use anyhow::{Context, Result, bail};
use schism_nemesis::Ledger;
use schism_nemesis::hosts::RemoteLeft;
use schism_targets::remote::{Exec, HostSpec, Needs, Ssh, SshOptions, preflight, quote};
use std::net::{Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The hosts of a run, as the inventory names them.
#[derive(Debug, Clone)]
pub struct Hosts {
    pub specs: Vec<HostSpec>,
    pub known_hosts: PathBuf,
    /// Each host's IPv4 address (what the nodes listen on and nft rules name).
    pub addrs: Vec<Ipv4Addr>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    known_hosts: Option<PathBuf>,
    #[serde(default)]
    host: Vec<HostSpec>,
}

/// The hosts `--inventory` or `--hosts` name (`None`: the run is local).
pub fn load(inventory: Option<&Path>, hosts: &[String]) -> Result<Option<Hosts>> {
    let (specs, known_hosts) = match inventory {
        Some(path) => read_inventory(path)?,
        None if hosts.is_empty() => return Ok(None),
        None => {
            let specs = hosts
                .iter()
                .map(|h| HostSpec::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
            (specs, home.join(".ssh").join("known_hosts"))
        }
    };
    if specs.is_empty() {
        bail!("the inventory names no host: add [[host]] tables with an address");
    }
    let mut names = std::collections::BTreeSet::new();
    for s in &specs {
        if !names.insert(s.name.clone()) {
            bail!(
                "two hosts are named {:?}: give each a distinct `name`",
                s.name
            );
        }
    }
    let addrs = specs.iter().map(ipv4_of).collect::<Result<Vec<_>>>()?;
    Ok(Some(Hosts {
        specs,
        known_hosts,
        addrs,
    }))
}

fn read_inventory(path: &Path) -> Result<(Vec<HostSpec>, PathBuf)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the inventory {}", path.display()))?;
    let file: InventoryFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        anyhow::anyhow!(
            "{}{}: {}",
            path.display(),
            line.map_or(String::new(), |l| format!(":{l}")),
            e.message()
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("/"));
    let known_hosts = file.known_hosts.map_or_else(
        || {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
                .join(".ssh/known_hosts")
        },
        |k| base.join(k),
    );
    let specs = file
        .host
        .into_iter()
        .map(|mut h| {
            if h.name.is_empty() {
                h.name = h.address.clone();
            }
            h.key = h.key.map(|k| base.join(k));
            h
        })
        .collect();
    Ok((specs, known_hosts))
}

fn ipv4_of(h: &HostSpec) -> Result<Ipv4Addr> {
    if let Ok(a) = h.address.parse::<Ipv4Addr>() {
        return Ok(a);
    }
    (h.address.as_str(), h.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| {
            it.find_map(|a| match a.ip() {
                std::net::IpAddr::V4(v4) => Some(v4),
                std::net::IpAddr::V6(_) => None,
            })
        })
        .with_context(|| {
            format!(
                "host {}: {:?} does not resolve to an IPv4 address: give its address in the inventory",
                h.name, h.address
            )
        })
}

/// The hosts connected, checked and provisioned for one run.
#[derive(Debug)]
pub struct Provisioned {
    pub ssh: Vec<Arc<Ssh>>,
    /// schism's binary on each host.
    pub exes: Vec<String>,
    /// The run's folder on each host.
    pub run_dirs: Vec<String>,
}

impl Provisioned {
    pub fn execs(&self) -> Vec<Arc<dyn Exec>> {
        self.ssh
            .iter()
            .map(|s| s.clone() as Arc<dyn Exec>)
            .collect()
    }

    /// Every transport failure that was retried, one line each.
    pub fn retries(&self) -> Vec<String> {
        self.ssh.iter().flat_map(|s| s.retries()).collect()
    }
}

/// What a run needs of each host.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub accept_new_host_keys: bool,
    pub run_dir: &'a Path,
    pub run_id: &'a str,
    /// The ports the nodes listen on (each must be free on every host).
    pub ports: Vec<u16>,
    /// The servers the nodes run (binary, Debian package), beyond schism's own.
    pub binaries: Vec<(String, String)>,
    /// The nodes are schism's own (the reference cluster): upload the binary.
    pub upload_exe: bool,
    /// Partitions are scheduled: nft is needed.
    pub partitions: bool,
}

impl Plan<'_> {
    /// What a run of `db` (`None`: the reference cluster, on `port`) needs of each host
    /// (`failover`: Redis's sentinels too).
    pub fn needs(
        db: Option<schism_targets::db::DbKind>,
        port: u16,
        failover: bool,
    ) -> (Vec<u16>, Vec<(String, String)>) {
        use schism_targets::db::DbKind;
        let pair = |b: &str, p: &str| (b.to_owned(), p.to_owned());
        match db {
            None => (vec![port], Vec::new()),
            Some(DbKind::Etcd) => (vec![2379, 2380], vec![pair("etcd", "etcd-server")]),
            Some(DbKind::Postgres) => (
                vec![5432],
                vec![
                    pair("/usr/lib/postgresql/15/bin/postgres", "postgresql-15"),
                    pair("setpriv", "util-linux"),
                ],
            ),
            Some(DbKind::Redis) if failover => (
                vec![6379, 26379],
                vec![
                    pair("redis-server", "redis-server"),
                    pair("redis-sentinel", "redis-sentinel"),
                ],
            ),
            Some(DbKind::Redis) => (vec![6379], vec![pair("redis-server", "redis-server")]),
            // SQL, group communication, IST and SST; the joiners' data directories are
            // seeded with a gzipped tar of n1's, as base64 through this machine.
            Some(DbKind::Galera) => (
                vec![3306, 4567, 4568, 4444],
                vec![
                    pair("mariadbd", "mariadb-server"),
                    pair("mariadb-install-db", "mariadb-server"),
                    pair("tar", "tar"),
                    pair("gzip", "gzip"),
                    pair("base64", "coreutils"),
                    pair("timeout", "coreutils"),
                ],
            ),
        }
    }
}

/// Connects to every host and runs the preflight (in parallel), records each in the
/// ledger, then uploads the binary and makes the run's folder there.
pub fn provision(hosts: &Hosts, plan: &Plan<'_>, ledger: &Ledger) -> Result<Provisioned> {
    let opts = SshOptions {
        known_hosts: hosts.known_hosts.clone(),
        accept_new_host_keys: plan.accept_new_host_keys,
        control_dir: schism_nemesis::hosts::control_dir(),
        log_dir: plan.run_dir.to_owned(),
    };
    let mut needs = Needs {
        binaries: vec![("kill".into(), "procps".into())],
        ports: plan.ports.clone(),
    };
    needs.binaries.extend(plan.binaries.iter().cloned());
    if plan.partitions {
        needs.binaries.push(("nft".into(), "nftables".into()));
    }
    let connected: Vec<Result<Ssh, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .specs
            .iter()
            .map(|h| {
                let (opts, needs) = (opts.clone(), needs.clone());
                s.spawn(move || {
                    let ssh = Ssh::connect(h.clone(), opts).map_err(|e| e.to_string())?;
                    preflight(&ssh, &needs).map_err(|e| e.to_string())?;
                    Ok(ssh)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("preflight panicked".into()))
            })
            .collect()
    });
    let mut ssh = Vec::new();
    for c in connected {
        ssh.push(Arc::new(c.map_err(anyhow::Error::msg)?));
    }
    let run_dirs: Vec<String> = hosts
        .specs
        .iter()
        .map(|h| format!("{}/runs/{}", h.dir.trim_end_matches('/'), plan.run_id))
        .collect();
    let exes: Vec<String> = hosts
        .specs
        .iter()
        .map(|h| format!("{}/bin/schism", h.dir.trim_end_matches('/')))
        .collect();
    for (h, dir) in hosts.specs.iter().zip(&run_dirs) {
        ledger.add_remote(RemoteLeft {
            host: h.clone(),
            known_hosts: hosts.known_hosts.clone(),
            run_dir: dir.clone(),
            pids: Vec::new(),
        })?;
    }
    if !plan.upload_exe {
        // A database's nodes are the host's own servers: only the run's folder is made.
        for (host, dir) in ssh.iter().zip(&run_dirs) {
            host.run(&format!("mkdir -p {}", quote(dir)), None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        return Ok(Provisioned {
            ssh,
            exes,
            run_dirs,
        });
    }
    let exe = std::env::current_exe().context("cannot find the schism executable to upload")?;
    let local_sum = identity(&exe)?;
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = ssh
            .iter()
            .zip(exes.iter().zip(&run_dirs))
            .map(|(host, (remote_exe, dir))| {
                let (exe, local_sum) = (&exe, &local_sum);
                s.spawn(move || {
                    install(&**host, exe, local_sum, remote_exe, dir).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("upload panicked".into())))
            .collect()
    });
    for r in results {
        r.map_err(anyhow::Error::msg)?;
    }
    Ok(Provisioned {
        ssh,
        exes,
        run_dirs,
    })
}

/// The binary (when the host's copy differs) and the run's folder on one host.
fn install(
    host: &dyn Exec,
    exe: &Path,
    local_sum: &str,
    remote_exe: &str,
    run_dir: &str,
) -> Result<(), schism_targets::remote::ExecError> {
    let stamp = format!("{remote_exe}.stamp");
    // One round trip: the run's folder, and which build the host has.
    let remote_sum = host.run(
        &format!(
            "mkdir -p {} && {{ [ -x {} ] && cat {} 2>/dev/null; true; }}",
            quote(run_dir),
            quote(remote_exe),
            quote(&stamp)
        ),
        None,
    )?;
    if remote_sum.trim() != local_sum {
        host.upload(exe, remote_exe)?;
        host.run(
            &format!("printf '%s\\n' {} > {}", quote(local_sum), quote(&stamp)),
            None,
        )?;
    }
    Ok(())
}

/// What tells one build of the binary from another without reading it: size,
/// modification time and inode (a rebuild changes them).
fn identity(path: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!(
        "{}-{}.{}-{}",
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ino()
    ))
}
