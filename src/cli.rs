//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mindshop",
    version,
    about = "Edge and backend for shopping assistants"
)]
pub struct Cli {
    /// TOML configuration file (default: ./mindshop.toml when it exists). Environment
    /// variables MINDSHOP_<SECTION>_<KEY> override it.
    #[arg(long, global = true, env = "MINDSHOP_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the edge, the backend and the metrics listener in one process (embedded defaults).
    Serve(ProcessArgs),
    /// Run only the edge (needs internal.secret).
    Edge(ProcessArgs),
    /// Run only the backend (needs internal.secret).
    Backend,
    /// Make the running `serve` or `edge` (named by edge.pid_file) re-read its configuration,
    /// and print what it applied; fails if the file is invalid or the process refused it.
    Reload,
    /// Apply pending database migrations.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage merchants, API keys and portal tokens (prints JSON).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Options of the long-running `serve` and `edge`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ProcessArgs {
    /// Take over from the running process (named by edge.pid_file): receive its listening
    /// sockets, then let it finish its requests and exit. No connection is refused.
    #[arg(long)]
    pub upgrade: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration with secrets redacted; fail if it is invalid.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Merchants.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Issue an HS256 portal JWT signed with auth.jwt_secret.
    Token(TokenArgs),
    /// Certificates for trying the HTTPS listener locally.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Write a local CA (ca.pem) and a certificate it signed (cert.pem, key.pem) for --host.
    SelfSigned(SelfSignedArgs),
}

#[derive(Debug, clap::Args)]
pub struct SelfSignedArgs {
    /// A name (or IP address) the certificate serves; repeatable.
    #[arg(long = "host", required = true)]
    pub hosts: Vec<String>,
    /// Directory to write the files to (created if missing).
    #[arg(long)]
    pub out: String,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
}

#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant.
    Create {
        /// Merchant id: letters, digits, '-' and '_', at most 64 characters.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// An allowed domain for the widget (host name, e.g. acme.com); repeatable.
        #[arg(long = "domain")]
        domains: Vec<String>,
        #[arg(long, default_value = "free")]
        plan: String,
    },
    /// List merchants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; the key is printed this once.
    Create {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_enum)]
        kind: KeyKindArg,
        #[arg(long, value_enum, default_value_t = KeyEnvArg::Test)]
        env: KeyEnvArg,
        /// A permission (e.g. documents:read, *); repeatable. Default: browser-safe set for
        /// publishable keys, `*` for secret keys.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List a merchant's keys (prefixes only).
    List {
        #[arg(long)]
        merchant: String,
    },
    /// Revoke a key.
    Revoke {
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyKindArg {
    Publishable,
    Secret,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyEnvArg {
    Test,
    Live,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub merchant: String,
    /// A role; `admin` may act on every merchant. Repeatable.
    #[arg(long = "role", value_parser = ["admin"])]
    pub roles: Vec<String>,
    /// Lifetime in seconds (default 3600, or `auth.jwt_max_lifetime_secs` if shorter).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// The token's subject (default: cli:<merchant>).
    #[arg(long)]
    pub sub: Option<String>,
}
