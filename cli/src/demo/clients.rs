//! The demo's gateway clients: phones that log in, place calls, resume their sessions on the new
//! active after a failover, and the CDRs they leave.

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_proto::data as data_pb;
use tandem_proto::gateway as pb;
use tandem_proto::gateway::gateway_client::GatewayClient;
use tonic::transport::Channel;

use super::local_pair::LocalPair;

/// One demo client: its user, its session token, and the call it runs.
pub struct Phone {
    pub user: String,
    pub token: String,
    pub call: Option<String>,
    next_request: u64,
}

impl Phone {
    fn request_id(&mut self, what: &str) -> String {
        self.next_request += 1;
        format!("demo-{}-{what}-{}", self.user, self.next_request)
    }
}

pub async fn connect(pair: &LocalPair, name: &str) -> Result<GatewayClient<Channel>, String> {
    let node = pair.get(name);
    let config = tandem_node::tls::client_config(&node.tls, false).map_err(|e| e.to_string())?;
    let channel = tandem_node::tls::connect(
        &node.client_address,
        name,
        config,
        Duration::from_millis(500),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(GatewayClient::new(channel))
}

fn password_request(request_id: String, user: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        request_id,
        user: user.into(),
        credential: Some(pb::login_request::Credential::Password(format!(
            "{user}-secret"
        ))),
        client_kind: "demo-phone".into(),
    }
}

/// Adds `count` users on the active node (`name`) through the admin service.
pub async fn add_users(pair: &LocalPair, name: &str, count: usize) -> Result<Vec<String>, String> {
    let mut admin = pair.get(name).client().await?;
    let mut users = Vec::new();
    for index in 1..=count {
        let user = format!("phone{index}");
        admin
            .user_add(tandem_proto::admin::UserAddRequest {
                name: user.clone(),
                password: format!("{user}-secret"),
            })
            .await
            .map_err(|status| format!("user add {user}: {}", status.message()))?;
        users.push(user);
    }
    Ok(users)
}

/// A login on the passive: returns its refusal message (an error if it was admitted).
pub async fn refused_login(pair: &LocalPair, passive: &str, user: &str) -> Result<String, String> {
    let mut client = connect(pair, passive).await?;
    match client
        .login(password_request(format!("demo-refused-{user}"), user))
        .await
    {
        Ok(_) => Err(format!("the passive {passive} admitted a login")),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            Ok(status.message().to_string())
        }
        Err(status) => Err(format!("unexpected refusal: {status}")),
    }
}

/// Logs `user` in with its password on `name`.
pub async fn login(pair: &LocalPair, name: &str, user: &str) -> Result<Phone, String> {
    let mut client = connect(pair, name).await?;
    let mut phone = Phone {
        user: user.into(),
        token: String::new(),
        call: None,
        next_request: 0,
    };
    let reply = client
        .login(password_request(phone.request_id("login"), user))
        .await
        .map_err(|status| format!("login {user}: {}", status.message()))?
        .into_inner();
    phone.token = reply.token;
    Ok(phone)
}

pub async fn start_call(pair: &LocalPair, name: &str, phone: &mut Phone) -> Result<(), String> {
    let mut client = connect(pair, name).await?;
    let reply = client
        .start_call(pb::StartCallRequest {
            request_id: phone.request_id("start"),
            token: phone.token.clone(),
            from: phone.user.clone(),
            to: "voicemail".into(),
        })
        .await
        .map_err(|status| format!("StartCall for {}: {}", phone.user, status.message()))?
        .into_inner();
    phone.call = Some(reply.call_id);
    Ok(())
}

/// Ends the phone's call; returns the CDR's cause and whether it had already ended.
pub async fn end_call(
    pair: &LocalPair,
    name: &str,
    phone: &mut Phone,
) -> Result<(String, bool), String> {
    let Some(call_id) = phone.call.take() else {
        return Err(format!("{} runs no call", phone.user));
    };
    let mut client = connect(pair, name).await?;
    let reply = client
        .end_call(pb::EndCallRequest {
            request_id: phone.request_id("end"),
            token: phone.token.clone(),
            call_id,
            cause: String::new(),
        })
        .await
        .map_err(|status| format!("EndCall for {}: {}", phone.user, status.message()))?
        .into_inner();
    Ok((reply.cause, reply.already_ended))
}

/// Resumes the phone's session on `name` with its token (no password).
pub async fn resume(pair: &LocalPair, name: &str, phone: &Phone) -> Result<(), tonic::Status> {
    let mut client = connect(pair, name)
        .await
        .map_err(tonic::Status::unavailable)?;
    client
        .login(pb::LoginRequest {
            request_id: String::new(),
            user: String::new(),
            credential: Some(pb::login_request::Credential::ResumeToken(
                phone.token.clone(),
            )),
            client_kind: "demo-phone".into(),
        })
        .await
        .map(drop)
}

/// The CDRs on `name`: call id → cause (a stale read is allowed on a passive).
pub async fn cdrs(pair: &LocalPair, name: &str) -> Result<BTreeMap<String, String>, String> {
    let node = pair.get(name);
    let mut client = super::data::connect(&node.client_address, name, &node.tls).await?;
    let reply = client
        .query(data_pb::QueryRequest {
            statement: Some(data_pb::Statement {
                sql: "SELECT call_id, cause FROM cdrs".into(),
                params: Vec::new(),
            }),
            allow_stale: true,
        })
        .await
        .map_err(|status| status.message().to_string())?
        .into_inner();
    let text = |value: &data_pb::Value| match &value.kind {
        Some(data_pb::value::Kind::Text(text)) => text.clone(),
        _ => String::new(),
    };
    Ok(reply
        .rows
        .iter()
        .filter(|row| row.values.len() == 2)
        .map(|row| (text(&row.values[0]), text(&row.values[1])))
        .collect())
}
