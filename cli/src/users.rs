//! The clients gateway's users (`user add|passwd|del|list`) and the pair's blocks
//! (`block|unblock logins|calls`).

use tandem_proto::admin as pb;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::args::{BlockWhat, UserCommand};
use crate::failure::{Failure, print_reply, rpc_failure};

pub async fn user(
    client: &mut AdminClient<Channel>,
    command: UserCommand,
    json: bool,
) -> Result<(), Failure> {
    let password = |name: &str, given: Option<String>| match given {
        Some(password) => Ok(password),
        None => crate::password_prompt::read_new_password(name).map_err(Failure),
    };
    match command {
        UserCommand::Add {
            name,
            password: given,
        } => {
            let password = password(&name, given)?;
            let request = pb::UserAddRequest { name, password };
            print_reply(client.user_add(request).await, json)
        }
        UserCommand::Passwd {
            name,
            password: given,
        } => {
            let password = password(&name, given)?;
            let request = pb::UserPasswdRequest { name, password };
            print_reply(client.user_passwd(request).await, json)
        }
        UserCommand::Del { name } => {
            print_reply(client.user_del(pb::UserDelRequest { name }).await, json)
        }
        UserCommand::List => {
            let users = client
                .user_list(pb::UserListRequest {})
                .await
                .map_err(rpc_failure)?
                .into_inner()
                .users;
            if json {
                let list: Vec<serde_json::Value> = users
                    .iter()
                    .map(|user| {
                        serde_json::json!({
                            "name": user.name,
                            "created_at_ms": user.created_at_ms,
                            "changed_at_ms": user.changed_at_ms,
                            "sessions": user.sessions,
                            "calls_active": user.calls_active,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if users.is_empty() {
                println!("no users; `tandemctl user add NAME` adds one");
                return Ok(());
            }
            println!("{:<24} {:>8} {:>6}  created", "user", "sessions", "calls");
            for user in users {
                println!(
                    "{:<24} {:>8} {:>6}  {}",
                    user.name,
                    user.sessions,
                    user.calls_active,
                    tandem_gateway::gateway::format_ms(user.created_at_ms)
                );
            }
            Ok(())
        }
    }
}

/// `block` (`on`) or `unblock` new logins or new calls on the pair.
pub async fn set_block(
    client: &mut AdminClient<Channel>,
    what: BlockWhat,
    on: bool,
    json: bool,
) -> Result<(), Failure> {
    let request = pb::SetBlockRequest {
        what: what.as_str().into(),
        on,
        reason: String::new(),
    };
    print_reply(client.set_block(request).await, json)
}
