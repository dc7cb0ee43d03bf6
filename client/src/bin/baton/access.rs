//! `baton acl` (a node's ACL, and who the server takes us to be) and `baton token` (tokens
//! for TCP clients, made locally).

use crate::args::{AclCommand, TokenCommand};
use crate::commands::{at, print_line};
use anyhow::{Context as _, Result, bail};
use baton::{AclEntry, Client, Token};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

pub async fn acl(client: &Client, action: AclCommand) -> Result<()> {
    match action {
        AclCommand::Get { path, json } => {
            let (acl, stat) = client.get_acl(&path).await.map_err(|e| at(&path, e))?;
            if json {
                let entries: Vec<String> = acl.iter().map(ToString::to_string).collect();
                print_line(&serde_json::json!({ "acl": entries, "aversion": stat.aversion }).to_string())?;
            } else {
                for entry in acl {
                    print_line(&entry.to_string())?;
                }
            }
        }
        AclCommand::Set { path, entries, version } => {
            let acl = parse_entries(&entries)?;
            client.set_acl(&path, &acl, version).await.map_err(|e| at(&path, e))?;
        }
        AclCommand::Whoami => {
            let (principals, superuser) = client.who_am_i().await?;
            for principal in principals {
                print_line(&principal.to_string())?;
            }
            print_line("anyone")?;
            if superuser {
                print_line("(superuser)")?;
            }
        }
    }
    Ok(())
}

/// Entries given as several arguments, each possibly comma-separated; `uid:` and `gid:` also
/// take user and group names, looked up here.
pub fn parse_entries(args: &[String]) -> Result<Vec<AclEntry>> {
    let mut acl = Vec::new();
    for entry in args.iter().flat_map(|arg| arg.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
        acl.push(baton::proto::acl::parse_entry_named(entry).map_err(anyhow::Error::msg)?);
    }
    if acl.is_empty() {
        bail!("an ACL needs at least one entry");
    }
    Ok(acl)
}

pub fn token(action: TokenCommand) -> Result<()> {
    let TokenCommand::New { name, out } = action;
    let mut secret = [0u8; baton::proto::token::SECRET_LEN];
    let mut salt = [0u8; baton::proto::token::SALT_LEN];
    getrandom::fill(&mut secret)
        .and_then(|()| getrandom::fill(&mut salt))
        .map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let token = Token::new(&name, secret).map_err(anyhow::Error::msg)?;
    write_secret(&out, &format!("{token}\n"))?;
    print_line(&token.verifier(salt).to_string())
}

/// Writes a new file readable by its owner only; refuses to replace one.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a client token file (`NAME:SECRET`).
pub fn load_token(path: &Path) -> Result<Token> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read token file {}", path.display()))?;
    text.trim().parse().map_err(|e: String| anyhow::anyhow!("token file {}: {e}", path.display()))
}
