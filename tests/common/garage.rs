//! A real distributed object store for the S3 tests: a Garage cluster of
//! several nodes on loopback ports, every object replicated on three of
//! them, with an access key and a bucket it may read and write.
//!
//! Garage is AGPL: it is only ever run as separate `garage server`
//! processes, never linked. `scripts/install-garage.sh` installs the pinned
//! version into a cache outside the checkout; `REWIND_GARAGE_BIN` names
//! another binary instead. Each node is set up through the `garage` CLI
//! (`json-api ENDPOINT PAYLOAD` speaks Garage's admin API over its RPC port
//! and prints JSON), and every step that fails says which step it was,
//! with what the CLI and every node's server printed.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::command::{run, wait_for, Run};

/// The region Garage signs for (its `s3_region`): clients must use it.
pub const GARAGE_REGION: &str = "garage";
/// Every object lives on this many nodes.
const REPLICATION_FACTOR: usize = 3;
/// How long a node may take to answer its CLI, and the cluster to become
/// healthy after a change.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The capacity each node offers in the layout; only the ratios matter.
const NODE_CAPACITY_BYTES: u64 = 1 << 30;

/// The garage binary: `$REWIND_GARAGE_BIN`, or the one
/// `scripts/install-garage.sh` installs (a no-op once it is cached; it
/// builds Garage on a machine that has none yet, which takes long).
pub fn garage_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("REWIND_GARAGE_BIN") {
            return PathBuf::from(path);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-garage.sh");
        let install = Command::new(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&install.stdout);
        assert!(
            install.status.success(),
            "{} failed ({}): Garage is needed for these tests\n{stdout}",
            script.display(),
            install.status
        );
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("the script prints the binary")
                .trim(),
        )
    })
}

/// One node: its directory (config, metadata, data, log) and its ports.
struct Node {
    dir: PathBuf,
    rpc_port: u16,
    s3_port: u16,
    admin_port: u16,
    server: Option<Child>,
}

impl Node {
    fn config(&self) -> PathBuf {
        self.dir.join("garage.toml")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn rpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.rpc_port)
    }

    fn write_config(&self, rpc_secret: &str, admin_token: &str) {
        let dir = self.dir.display();
        let config = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = {REPLICATION_FACTOR}

rpc_bind_addr = "{rpc}"
rpc_public_addr = "{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "127.0.0.1:{s3}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{admin_token}"
"#,
            rpc = self.rpc_address(),
            s3 = self.s3_port,
            admin = self.admin_port,
        );
        std::fs::create_dir_all(&self.dir).unwrap();
        std::fs::write(self.config(), config).unwrap();
    }
}

/// A running cluster; every server is killed and its files removed on drop.
pub struct GarageCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
}

impl GarageCluster {
    /// Starts `nodes` servers, joins them into one cluster whose layout
    /// gives each its own zone, waits until it is healthy, and creates a
    /// key and a bucket that key may read and write.
    pub fn start(nodes: usize) -> GarageCluster {
        assert!(
            nodes >= REPLICATION_FACTOR,
            "a cluster with replication factor {REPLICATION_FACTOR} needs as many nodes"
        );
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let rpc_secret = random_hex(32);
        let admin_token = random_hex(32);
        let ports = free_ports(3 * nodes);
        let nodes = ports
            .chunks(3)
            .enumerate()
            .map(|(i, p)| Node {
                dir: root.join(format!("node{i}")),
                rpc_port: p[0],
                s3_port: p[1],
                admin_port: p[2],
                server: None,
            })
            .collect();
        let mut cluster = GarageCluster {
            dir,
            nodes,
            key_id: String::new(),
            secret: String::new(),
            bucket: "rewind".to_string(),
        };
        for node in &cluster.nodes {
            node.write_config(&rpc_secret, &admin_token);
        }
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_answering(i);
        }
        cluster.connect_nodes();
        cluster.assign_layout();
        cluster.wait_healthy();
        cluster.create_key_and_bucket();
        eprintln!(
            "Garage cluster of {} nodes healthy in {:.1} s (S3 at {})",
            cluster.nodes.len(),
            started.elapsed().as_secs_f64(),
            cluster.endpoint()
        );
        cluster
    }

    /// The S3 endpoint of node `i` (every node serves the whole bucket).
    pub fn endpoint_of(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// The S3 endpoint of node 0: tests stop other nodes.
    pub fn endpoint(&self) -> String {
        self.endpoint_of(0)
    }

    pub fn region(&self) -> &'static str {
        GARAGE_REGION
    }

    /// A `--repo` location under `prefix` in the bucket, through node 0,
    /// in restic's spelling (`s3:http://host:port/bucket/prefix`).
    pub fn repo_url(&self, prefix: &str) -> String {
        format!("s3:{}/{}/{prefix}", self.endpoint(), self.bucket)
    }

    /// The AWS variables a client needs for this cluster, set on `cmd`
    /// (any others from the caller's environment removed).
    pub fn credentials_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for unset in [
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
        ] {
            cmd.env_remove(unset);
        }
        cmd.env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_REGION", GARAGE_REGION)
    }

    /// Kills node `i` outright (a crash, or a machine gone from the network).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut server) = self.nodes[i].server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Starts node `i` again with its data and waits until the whole
    /// cluster is healthy again.
    pub fn start_node(&mut self, i: usize) {
        assert!(self.nodes[i].server.is_none(), "node {i} is running");
        self.spawn(i);
        self.wait_answering(i);
        self.wait_healthy();
    }

    /// `garage -c <node i's config> ARGS...` (not checked).
    pub fn garage(&self, i: usize, args: &[&str]) -> Run {
        run(Command::new(garage_binary())
            .arg("-c")
            .arg(self.nodes[i].config())
            .args(args))
    }

    /// `garage json-api ENDPOINT PAYLOAD` through node `i`: the response,
    /// or a panic naming `step`.
    pub fn admin(
        &self,
        i: usize,
        step: &str,
        endpoint: &str,
        payload: serde_json::Value,
    ) -> serde_json::Value {
        let payload = payload.to_string();
        let answer = self.garage(i, &["json-api", endpoint, &payload]);
        if !answer.ok() {
            self.fail(step, &described(&answer));
        }
        serde_json::from_slice(&answer.stdout)
            .unwrap_or_else(|e| self.fail(step, &format!("{e}\n{}", described(&answer))))
    }

    /// Cluster health as node `i` sees it (Garage's GetClusterHealth).
    pub fn health(&self, i: usize) -> Option<serde_json::Value> {
        let answer = self.garage(i, &["json-api", "GetClusterHealth"]);
        answer
            .ok()
            .then(|| serde_json::from_slice(&answer.stdout).ok())
            .flatten()
    }

    /// An S3 request to node `i`, signed with SigV4 by curl
    /// (`--aws-sigv4`, curl 7.75 or later): the HTTP status and the body.
    /// `path` is `/bucket/key?query`, already percent-encoded.
    pub fn s3_request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (u16, Vec<u8>) {
        static REQUESTS: AtomicUsize = AtomicUsize::new(0);
        let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
        let scratch = self.dir.path().join("requests");
        std::fs::create_dir_all(&scratch).unwrap();
        let response = scratch.join(format!("{n}.response"));
        let mut curl = Command::new("curl");
        curl.args(["--silent", "--show-error", "--request", method])
            .arg("--user")
            .arg(format!("{}:{}", self.key_id, self.secret))
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{GARAGE_REGION}:s3"))
            // Garage wants the payload's hash, which curl 7.x does not send
            // by itself; as an x-amz-* header it is signed too.
            .arg("--header")
            .arg(format!(
                "x-amz-content-sha256: {}",
                sha256_hex(body.unwrap_or_default())
            ))
            .arg("--output")
            .arg(&response)
            .args(["--write-out", "%{http_code}"]);
        if let Some(body) = body {
            let request = scratch.join(format!("{n}.request"));
            std::fs::write(&request, body).unwrap();
            curl.arg("--data-binary")
                .arg(format!("@{}", request.display()));
        }
        curl.arg(format!("{}{path}", self.endpoint_of(i)));
        let answer = run(&mut curl);
        let status = answer
            .text()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl gave no HTTP status:\n{}", described(&answer)));
        let body = std::fs::read(&response).unwrap_or_default();
        let _ = std::fs::remove_file(&response);
        let _ = std::fs::remove_file(scratch.join(format!("{n}.request")));
        (status, body)
    }

    /// PUT of `data` at `key` in the bucket through node `i`, which must succeed.
    #[track_caller]
    pub fn put_object(&self, i: usize, key: &str, data: &[u8]) {
        let (status, body) =
            self.s3_request(i, "PUT", &format!("/{}/{key}", self.bucket), Some(data));
        assert_eq!(
            status,
            200,
            "PUT {key} through node {i}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// GET of `key` in the bucket through node `i`: None if it is missing.
    #[track_caller]
    pub fn get_object(&self, i: usize, key: &str) -> Option<Vec<u8>> {
        let (status, body) = self.s3_request(i, "GET", &format!("/{}/{key}", self.bucket), None);
        match status {
            200 => Some(body),
            404 => None,
            _ => panic!(
                "GET {key} through node {i}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// The keys under `prefix` in the bucket (ListObjectsV2 through node
    /// `i`, every page).
    #[track_caller]
    pub fn list_keys(&self, i: usize, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut path = format!(
                "/{}?list-type=2&prefix={}",
                self.bucket,
                percent_encode(prefix)
            );
            if let Some(token) = &continuation {
                path.push_str(&format!("&continuation-token={}", percent_encode(token)));
            }
            let (status, body) = self.s3_request(i, "GET", &path, None);
            let xml = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(status, 200, "list {prefix:?} through node {i}: {xml}");
            keys.extend(xml_values(&xml, "Key"));
            continuation = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if continuation.is_none() {
                return keys;
            }
        }
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(node.log())
            .unwrap();
        let server = Command::new(garage_binary())
            .arg("-c")
            .arg(node.config())
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", garage_binary().display()));
        self.nodes[i].server = Some(server);
    }

    /// Waits until node `i`'s server answers its CLI.
    fn wait_answering(&mut self, i: usize) {
        let step = format!("node {i} starts and answers GetClusterHealth");
        let mut last = None;
        let answered = wait_for(STARTUP_TIMEOUT, || {
            if let Some(status) = self.nodes[i]
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                last = Some(format!(
                    "`{} server` exited: {status}",
                    garage_binary().display()
                ));
                return true;
            }
            let answer = self.garage(i, &["json-api", "GetClusterHealth"]);
            let ok = answer.ok();
            last = Some(described(&answer));
            ok
        });
        let exited = self.nodes[i]
            .server
            .as_mut()
            .is_none_or(|s| s.try_wait().ok().flatten().is_some());
        if answered.is_none() || exited {
            self.fail(&step, &last.unwrap_or_default());
        }
    }

    /// Node 0 connects to every other node; Garage then tells each about
    /// the rest.
    fn connect_nodes(&self) {
        let peers: Vec<String> = (1..self.nodes.len())
            .map(|i| self.node_address(i))
            .collect();
        let answers = self.admin(
            0,
            "node 0 connects to the others",
            "ConnectClusterNodes",
            serde_json::json!(peers),
        );
        let failed: Vec<_> = answers
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["success"] != true)
            .collect();
        if !failed.is_empty() {
            self.fail("node 0 connects to the others", &format!("{failed:?}"));
        }
    }

    /// `<node id>@<rpc address>` of node `i`.
    fn node_address(&self, i: usize) -> String {
        let answer = self.garage(i, &["node", "id", "-q"]);
        if !answer.ok() {
            self.fail(&format!("node {i} tells its id"), &described(&answer));
        }
        answer.text().trim().to_string()
    }

    /// Every node gets a role in its own zone, and the layout is applied.
    fn assign_layout(&self) {
        let roles: Vec<serde_json::Value> = (0..self.nodes.len())
            .map(|i| {
                let address = self.node_address(i);
                let id = address.split('@').next().unwrap().to_string();
                serde_json::json!({
                    "id": id,
                    "zone": format!("dc{i}"),
                    "capacity": NODE_CAPACITY_BYTES,
                    "tags": [format!("node{i}")],
                })
            })
            .collect();
        let staged = self.admin(
            0,
            "stage a layout with every node",
            "UpdateClusterLayout",
            serde_json::json!({ "roles": roles }),
        );
        let version = staged["version"].as_u64().unwrap_or(0) + 1;
        self.admin(
            0,
            "apply the layout",
            "ApplyClusterLayout",
            serde_json::json!({ "version": version }),
        );
    }

    /// Waits until every running node sees all storage nodes up and every
    /// partition with all its replicas reachable.
    pub fn wait_healthy(&self) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].server.is_some())
            .collect();
        let mut last = Vec::new();
        let healthy = wait_for(STARTUP_TIMEOUT, || {
            last = running.iter().map(|&i| self.health(i)).collect();
            last.iter().all(|h| {
                h.as_ref().is_some_and(|h| {
                    h["status"] == "healthy"
                        && h["storageNodes"] == self.nodes.len()
                        && h["storageNodesUp"] == self.nodes.len()
                        && h["partitionsAllOk"] == h["partitions"]
                })
            })
        });
        if healthy.is_none() {
            self.fail("the cluster becomes healthy", &format!("{last:#?}"));
        }
    }

    fn create_key_and_bucket(&mut self) {
        let key = self.admin(
            0,
            "create an access key",
            "CreateKey",
            serde_json::json!({ "name": "rewind-tests" }),
        );
        let bucket = self.admin(
            0,
            "create the bucket",
            "CreateBucket",
            serde_json::json!({ "globalAlias": self.bucket }),
        );
        let access_key_id = key["accessKeyId"].as_str().unwrap_or_default().to_string();
        self.admin(
            0,
            "let the key read and write the bucket",
            "AllowBucketKey",
            serde_json::json!({
                "bucketId": bucket["id"],
                "accessKeyId": access_key_id,
                "permissions": { "read": true, "write": true, "owner": true },
            }),
        );
        self.key_id = access_key_id;
        self.secret = key["secretAccessKey"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if self.key_id.is_empty() || self.secret.is_empty() {
            self.fail("create an access key", &format!("{key:#}"));
        }
    }

    /// Panics naming the step that failed, with what was said and the end
    /// of every node's log.
    #[track_caller]
    fn fail(&self, step: &str, said: &str) -> ! {
        let mut logs = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = std::fs::read_to_string(node.log()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            logs.push_str(&format!("\n--- node {i} ({}):\n", node.log().display()));
            for line in tail.into_iter().rev() {
                logs.push_str(line);
                logs.push('\n');
            }
        }
        panic!("Garage cluster: `{step}` failed:\n{said}\n{logs}");
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}

/// `count` distinct free loopback ports: all are held until all are
/// picked, then let go for the servers to take.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A CLI run as a failure report shows it.
fn described(run: &Run) -> String {
    format!(
        "`{}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
        run.what,
        run.code,
        run.text(),
        run.stderr
    )
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// Percent-encodes everything but S3's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of every `<tag>...</tag>` in `xml`, unescaped (S3's listings
/// are flat enough for this).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value))
        .map(|value| {
            value
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).unwrap();
    hex::encode(buf)
}
