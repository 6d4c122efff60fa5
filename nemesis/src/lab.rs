//! The SSH lab: N hosts on one machine, for trying and testing schism over SSH.
//!
//! `up` creates, with the namespaces code of `netns` (run id `lab`, see `lab_id`): a
//! bridge namespace `schism-lab-br`, one namespace `schism-lab-h<i>` per host with `eth0`
//! at `10.77.<s>.<10+i>`, and the veth `schlab` that plugs this machine in at
//! `10.77.<s>.254` (a subnet no address of this machine is in, picked under the same
//! lock as runs). Each host runs its own `sshd` (Debian `openssh-server`) listening on its
//! address only, with its own generated host key; one generated client key pair logs in
//! as root. It writes `known_hosts` (the hosts' keys, so they are checked from the first
//! connection) and `inventory.toml` under the lab folder (`/var/tmp/schism-lab`, or
//! `$SCHISM_LAB_DIR`).
//!
//! Guarantees: the lab's record (`lab.json`) is written before anything is created and
//! names every namespace, the veth and each sshd's pid, so `down` (and `schism cleanup`
//! for a lab whose `up` did not finish) removes everything: sshd processes by recorded
//! pid (only if their command line still names the lab folder) and any process left in
//! the namespaces, the namespaces, the veth, the keys and the folder. All traffic stays
//! on the lab's bridge.

use crate::error::NemesisError;
use crate::netns;
use crate::sys;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The id the default lab's namespaces are named with.
pub const LAB_ID: &str = "lab";

/// The id a lab in `dir` names its namespaces and veth with: `lab` for the default
/// folder, else `lb` and 4 hex digits of the folder's path (so that a second lab, such
/// as a test's, never touches the user's).
pub fn lab_id(dir: &Path) -> String {
    if std::env::var_os("SCHISM_LAB_DIR").is_none() && dir == Path::new(DEFAULT_DIR) {
        return LAB_ID.to_owned();
    }
    let h = dir
        .display()
        .to_string()
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    format!("lb{:04x}", h & 0xffff)
}

const DEFAULT_DIR: &str = "/var/tmp/schism-lab";
/// The most hosts a lab has.
pub const MAX_HOSTS: usize = 9;
/// How long `up` waits for every sshd to listen.
const SSHD_READY_TIMEOUT_MS: u64 = 5_000;

/// One lab host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    pub name: String,
    pub namespace: String,
    pub address: Ipv4Addr,
    #[serde(default)]
    pub sshd_pid: Option<u32>,
}

/// What a lab consists of (`lab.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRecord {
    /// False until `up` finished: a lab that is not complete is a leftover.
    pub complete: bool,
    /// What its namespaces are named with (`lab_id`).
    pub id: String,
    pub dir: PathBuf,
    pub bridge_ns: String,
    pub root_link: String,
    pub hosts: Vec<LabHost>,
}

/// The lab's folder.
pub fn lab_dir() -> PathBuf {
    std::env::var_os("SCHISM_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join("lab.json")
}

/// The inventory file a lab writes.
pub fn inventory_path(dir: &Path) -> PathBuf {
    dir.join("inventory.toml")
}

/// The lab recorded in `dir`, if any (`Err`: a record that cannot be read).
pub fn load(dir: &Path) -> Result<Option<LabRecord>, NemesisError> {
    let path = record_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            NemesisError::Unsupported(format!(
                "{}: unreadable lab record ({e}); remove the lab with `schism lab down`",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NemesisError::io(path, e)),
    }
}

fn save(record: &LabRecord) -> Result<(), NemesisError> {
    let path = record_path(&record.dir);
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(record).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(|e| NemesisError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| NemesisError::io(path, e))
}

/// Why a lab cannot be made here, if it cannot.
pub fn unavailable() -> Option<String> {
    if let Some(why) = netns::unavailable() {
        return Some(why);
    }
    if !Path::new(SSHD).is_file() {
        return Some(format!(
            "{SSHD} not found: install the Debian package openssh-server"
        ));
    }
    if !sys::have("ssh-keygen") || !sys::have("ssh") {
        return Some(
            "`ssh`/`ssh-keygen` not found: install the Debian package openssh-client".into(),
        );
    }
    None
}

const SSHD: &str = "/usr/sbin/sshd";

/// Creates a lab of `hosts` hosts in `dir` and returns its record; fails if a lab is
/// already up there. On an error, everything created so far is removed.
pub fn up(dir: &Path, hosts: usize) -> Result<LabRecord, NemesisError> {
    if !(1..=MAX_HOSTS).contains(&hosts) {
        return Err(NemesisError::Unsupported(format!(
            "--hosts {hosts}: a lab has 1 to {MAX_HOSTS} hosts"
        )));
    }
    if let Some(why) = unavailable() {
        return Err(NemesisError::Unsupported(format!("schism lab: {why}")));
    }
    if load(dir)?.is_some() {
        return Err(NemesisError::Unsupported(format!(
            "a lab is already up in {} (inventory {}): remove it with `schism lab down` first",
            dir.display(),
            inventory_path(dir).display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| NemesisError::io(dir, e))?;
    // Searchable but not listable: the hosts' folders under it must be reachable by the
    // servers' own users (PostgreSQL runs as postgres); the private keys are 0600.
    set_mode(dir, 0o711)?;
    let id = lab_id(dir);
    let prefix = format!("schism-{id}");
    let mut record = LabRecord {
        complete: false,
        id: id.clone(),
        dir: dir.to_owned(),
        bridge_ns: format!("{prefix}-br"),
        root_link: format!("sch{id}"),
        hosts: (1..=hosts)
            .map(|i| LabHost {
                name: format!("h{i}"),
                namespace: format!("{prefix}-h{i}"),
                address: Ipv4Addr::UNSPECIFIED,
                sshd_pid: None,
            })
            .collect(),
    };
    save(&record)?;
    match build(&mut record) {
        Ok(()) => {
            record.complete = true;
            save(&record)?;
            Ok(record)
        }
        Err(e) => {
            let _ = down(dir);
            Err(e)
        }
    }
}

/// Namespaces, keys, sshd per host, known_hosts and the inventory.
fn build(record: &mut LabRecord) -> Result<(), NemesisError> {
    let lock = netns::lock_subnets()?;
    let octet = netns::free_subnet(&record.id)?;
    let gateway = Ipv4Addr::new(10, 77, octet, 254);
    netns::create_bridge(&record.bridge_ns, &record.root_link, gateway)?;
    drop(lock);
    for (i, h) in record.hosts.iter_mut().enumerate() {
        h.address = Ipv4Addr::new(10, 77, octet, 10 + i as u8 + 1);
        netns::add_node_namespace(&record.id, i, &h.namespace, h.address, &record.bridge_ns)?;
    }
    save(record)?;
    let dir = record.dir.clone();
    let client_key = dir.join("id_ed25519");
    keygen(&client_key, "schism-lab-client")?;
    std::fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys"))
        .map_err(|e| NemesisError::io(dir.join("authorized_keys"), e))?;
    // sshd's privilege-separation folder.
    std::fs::create_dir_all("/run/sshd").map_err(|e| NemesisError::io("/run/sshd", e))?;
    let mut known = String::new();
    for i in 0..record.hosts.len() {
        let h = record.hosts[i].clone();
        let hdir = dir.join(&h.name);
        std::fs::create_dir_all(&hdir).map_err(|e| NemesisError::io(&hdir, e))?;
        let host_key = hdir.join("ssh_host_ed25519_key");
        keygen(&host_key, &format!("schism-lab-{}", h.name))?;
        let config = hdir.join("sshd_config");
        std::fs::write(&config, sshd_config(&h, &host_key, &dir))
            .map_err(|e| NemesisError::io(&config, e))?;
        let pid = start_sshd(&h, &config, &hdir.join("sshd.log"))?;
        record.hosts[i].sshd_pid = Some(pid);
        save(record)?;
        let public = std::fs::read_to_string(hdir.join("ssh_host_ed25519_key.pub"))
            .map_err(|e| NemesisError::io(&hdir, e))?;
        let mut words = public.split_whitespace();
        let (Some(kind), Some(key)) = (words.next(), words.next()) else {
            return Err(NemesisError::Unsupported(format!(
                "{}: not a public key",
                hdir.display()
            )));
        };
        known.push_str(&format!("{} {kind} {key}\n", h.address));
    }
    let kh = dir.join("known_hosts");
    std::fs::write(&kh, known).map_err(|e| NemesisError::io(&kh, e))?;
    for h in &record.hosts {
        wait_listening(h)?;
    }
    let inv = inventory_path(&dir);
    std::fs::write(&inv, inventory(record, &client_key, &kh))
        .map_err(|e| NemesisError::io(&inv, e))?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), NemesisError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| NemesisError::io(path, e))
}

fn keygen(path: &Path, comment: &str) -> Result<(), NemesisError> {
    let p = path.display().to_string();
    sys::run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &p],
        None,
    )
    .map(|_| ())
}

/// An sshd that listens on the host's address only, lets the lab's key in as root and
/// nothing else, and multiplexes enough sessions for a run.
fn sshd_config(h: &LabHost, host_key: &Path, dir: &Path) -> String {
    format!(
        "ListenAddress {addr}\nPort 22\nHostKey {key}\nPidFile none\nAuthorizedKeysFile {auth}\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 64\n\
         MaxStartups 64:30:128\nPrintMotd no\nUseDNS no\n",
        addr = h.address,
        key = host_key.display(),
        auth = dir.join("authorized_keys").display(),
    )
}

/// `ip netns exec <ns> sshd -D -e -f <config>` in its own session (it outlives `lab
/// up`); `ip netns exec` execs, so the pid is sshd's own.
fn start_sshd(h: &LabHost, config: &Path, log: &Path) -> Result<u32, NemesisError> {
    use std::os::unix::process::CommandExt;
    let log_file = std::fs::File::create(log).map_err(|e| NemesisError::io(log, e))?;
    let child = Command::new("ip")
        .args(["netns", "exec", &h.namespace, SSHD, "-D", "-e", "-f"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .map_err(|e| NemesisError::Command {
            cmd: format!("ip netns exec {} {SSHD}", h.namespace),
            msg: e.to_string(),
        })?;
    Ok(child.id())
}

fn wait_listening(h: &LabHost) -> Result<(), NemesisError> {
    let addr = std::net::SocketAddr::from((h.address, 22));
    let deadline = Instant::now() + Duration::from_millis(SSHD_READY_TIMEOUT_MS);
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NemesisError::Unsupported(format!(
                "lab host {}: sshd does not listen on {addr} after {SSHD_READY_TIMEOUT_MS} ms; see its log in the lab folder",
                h.name
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn inventory(record: &LabRecord, key: &Path, known_hosts: &Path) -> String {
    let mut s = format!(
        "# Written by `schism lab up`; removed by `schism lab down`.\nknown_hosts = \"{}\"\n",
        known_hosts.display()
    );
    for h in &record.hosts {
        s.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = 22\nuser = \"root\"\nkey = \"{}\"\nsudo = false\ndir = \"{}\"\n",
            h.name,
            h.address,
            key.display(),
            record.dir.join(&h.name).join("remote").display()
        ));
    }
    s
}

/// Whether the lab's sshd processes all still run.
pub fn healthy(record: &LabRecord) -> bool {
    record.complete
        && record
            .hosts
            .iter()
            .all(|h| h.sshd_pid.is_some_and(|p| is_lab_sshd(p, &record.dir)))
}

fn is_lab_sshd(pid: u32, dir: &Path) -> bool {
    matches!(sys::proc_stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
        && sys::proc_cmdline(pid).is_some_and(|c| c.contains(&dir.display().to_string()))
}

/// Removes the lab recorded in `dir` (or, with no readable record, whatever carries the
/// lab's names); returns one line per thing removed.
pub fn down(dir: &Path) -> Result<Vec<String>, NemesisError> {
    let record = load(dir).ok().flatten();
    let prefix = format!("schism-{}-", lab_id(dir));
    let mut done = Vec::new();
    let mut pids: Vec<u32> = record
        .iter()
        .flat_map(|r| r.hosts.iter().filter_map(|h| h.sshd_pid))
        .filter(|&p| is_lab_sshd(p, dir))
        .collect();
    let namespaces: Vec<String> = sys::run("ip", &["netns", "list"], None)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    // Anything still running inside the lab's hosts (sshd's sessions, nodes a killed
    // run left) goes with them.
    for ns in &namespaces {
        if let Ok(out) = sys::run("ip", &["netns", "pids", ns], None) {
            pids.extend(out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        let p = Pid::from_raw(pid as i32);
        let _ = kill(p, Signal::SIGCONT);
        if kill(p, Signal::SIGKILL).is_ok() {
            done.push(format!("killed pid {pid}"));
        }
    }
    for ns in &namespaces {
        match sys::run("ip", &["netns", "del", ns], None) {
            Ok(_) => done.push(format!("deleted network namespace {ns}")),
            Err(e) => done.push(format!("could not delete network namespace {ns}: {e}")),
        }
    }
    let link = format!("sch{}", lab_id(dir));
    if Path::new("/sys/class/net").join(&link).exists() {
        match sys::run("ip", &["link", "del", &link], None) {
            Ok(_) => done.push(format!("deleted interface {link}")),
            Err(_) if !Path::new("/sys/class/net").join(&link).exists() => {
                done.push(format!("deleted interface {link}"))
            }
            Err(e) => done.push(format!("could not delete interface {link}: {e}")),
        }
    }
    if dir.exists() {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => done.push(format!("removed {} (keys, inventory)", dir.display())),
            Err(e) => done.push(format!("could not remove {}: {e}", dir.display())),
        }
    }
    Ok(done)
}

/// A lab `schism cleanup` should remove: one whose `up` did not finish or whose sshd
/// processes are gone (a complete, healthy lab is the user's, removed by `lab down`).
pub fn leftover(dir: &Path) -> Option<String> {
    match load(dir) {
        Ok(Some(r)) if healthy(&r) => None,
        Ok(Some(r)) if !r.complete => Some(format!("unfinished lab in {}", dir.display())),
        Ok(Some(_)) => Some(format!(
            "lab in {} whose sshd processes are gone",
            dir.display()
        )),
        Ok(None) => {
            let prefix = format!("schism-{}-", lab_id(dir));
            let ns = sys::run("ip", &["netns", "list"], None).unwrap_or_default();
            ns.lines()
                .any(|l| l.starts_with(&prefix))
                .then(|| "lab namespaces without a lab record".to_owned())
        }
        Err(e) => Some(e.to_string()),
    }
}
