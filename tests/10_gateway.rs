//! The clients gateway end to end: the passive refuses clients and names the active; sessions
//! survive a failover without a password round; calls of a failed node get `failover` CDRs;
//! blocks; bad input; users through `tandemctl user`.

mod common;

use common::gateway::*;
use common::*;
use tandem_harness::{Cluster, ClusterSpec};
use tonic::Code;

const ACTIVE_ADDRESS_KEY: &str = "tandem-active-client-address";

fn start() -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    Ok(cluster)
}

#[test]
fn the_passive_refuses_logins_naming_the_active_and_sessions_resume_after_a_failover()
-> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = start()?;
    add_user(&cluster, "a", "alice", "correct horse")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = gateway(&cluster, "a").await?;
        let mut b = gateway(&cluster, "b").await?;

        phase("b, the passive, refuses a login and names a's client address");
        let refused = login(&mut b, &rid("login"), "alice", "correct horse")
            .await
            .expect_err("the passive refuses logins");
        let address = cluster.addrs("a").client.to_string();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains(&address),
            "{}",
            refused.message()
        );
        let named = refused
            .metadata()
            .get(ACTIVE_ADDRESS_KEY)
            .and_then(|value| value.to_str().ok());
        assert_eq!(named, Some(address.as_str()));

        phase("alice logs in on a and runs two calls; one ends");
        let session = login(&mut a, &rid("login"), "alice", "correct horse").await?;
        assert!(!session.resumed);
        assert_eq!(session.node, "a");
        let ended = start_call(&mut a, &rid("start"), &session.token).await?;
        let running = start_call(&mut a, &rid("start"), &session.token).await?;
        let end_id = rid("end");
        let end = end_call(&mut a, &end_id, &session.token, &ended.call_id).await?;
        assert_eq!(end.cause, "normal");
        assert!(!end.already_ended);
        phase("a retried EndCall is answered from its first outcome");
        let again = end_call(&mut a, &end_id, &session.token, &ended.call_id).await?;
        assert_eq!(again.cause, "normal");
        assert!(!again.already_ended);
        let calls = list_calls(&mut a, &session.token).await?;
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].call_id, running.call_id);
        let status = cluster.status("a")?;
        assert_eq!(status["calls_active"], 1);
        assert_eq!(status["sessions"], 1);

        phase("b, the passive, refuses StartCall too");
        let refused = start_call(&mut b, &rid("start"), &session.token)
            .await
            .expect_err("the passive refuses calls");
        assert_eq!(refused.code(), Code::FailedPrecondition);

        phase("SIGKILL a; b takes over");
        common::data::wait_in_sync(&cluster, "a")?;
        cluster.node_mut("a").kill()?;
        wait_serving(&cluster, "b")?;

        phase("the session resumes on b with its token, no password");
        let resumed = resume(&mut b, &session.token).await?;
        assert!(resumed.resumed);
        assert_eq!(resumed.session_id, session.session_id);
        assert_eq!(resumed.node, "b");

        phase("b closes the call that ran on a with cause failover");
        cluster.wait_until(WAIT, "the failover CDR on b", |c| {
            let cdrs = runtime_free(|| cdrs(c, "b"))?;
            Ok(cdrs
                .iter()
                .any(|(id, cause)| id == &running.call_id && cause == "failover")
                .then_some(()))
        })?;
        let late = end_call(&mut b, &rid("end"), &resumed.token, &running.call_id).await?;
        assert!(late.already_ended);
        assert_eq!(late.cause, "failover");
        let on_b = cdrs(&cluster, "b").await?;
        let mut expected = vec![
            (ended.call_id.clone(), "normal".to_string()),
            (running.call_id.clone(), "failover".to_string()),
        ];
        expected.sort();
        assert_eq!(on_b, expected, "exactly one CDR per call");
        assert!(list_calls(&mut b, &resumed.token).await?.is_empty());

        phase("logout ends the session; a, back as the passive, has it gone too");
        b.logout(tandem_proto::gateway::LogoutRequest {
            request_id: rid("logout"),
            token: resumed.token.clone(),
        })
        .await?;
        let gone = resume(&mut b, &resumed.token)
            .await
            .expect_err("logged out");
        assert_eq!(gone.code(), Code::Unauthenticated);
        cluster.node_mut("a").restart()?;
        wait_steady(&cluster, "b")?;
        common::data::wait_in_sync(&cluster, "b")?;
        assert_eq!(cluster.status("a")?["sessions"], 0);
        assert_eq!(cdrs(&cluster, "a").await?, expected);
        anyhow::Ok(())
    })
}

#[test]
fn blocks_turn_away_new_logins_and_calls_but_not_what_already_runs() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = start()?;
    add_user(&cluster, "a", "gate", "pw-gate")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = gateway(&cluster, "a").await?;
        let session = login(&mut a, &rid("login"), "gate", "pw-gate").await?;
        let call = start_call(&mut a, &rid("start"), &session.token).await?;

        phase("block logins: a new login is refused, the session still works");
        let said = cluster.ctl_ok("a", &["block", "logins"])?;
        assert!(said.contains("blocked"), "{said}");
        let refused = login(&mut a, &rid("login"), "gate", "pw-gate")
            .await
            .expect_err("logins are blocked");
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(
            refused.message().contains("new logins are blocked"),
            "{}",
            refused.message()
        );
        assert!(refused.metadata().get(ACTIVE_ADDRESS_KEY).is_none());
        resume(&mut a, &session.token).await?;
        let second = start_call(&mut a, &rid("start"), &session.token).await?;
        let status = cluster.status("a")?;
        assert_eq!(status["blocks"]["logins"], true);
        assert_eq!(status["blocks"]["calls"], false);

        phase("the block is replicated: b shows it");
        common::data::wait_in_sync(&cluster, "a")?;
        assert_eq!(cluster.status("b")?["blocks"]["logins"], true);

        phase("block calls: StartCall is refused, running calls still end");
        cluster.ctl_ok("a", &["block", "calls"])?;
        let refused = start_call(&mut a, &rid("start"), &session.token)
            .await
            .expect_err("calls are blocked");
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(
            refused.message().contains("new calls are blocked"),
            "{}",
            refused.message()
        );
        end_call(&mut a, &rid("end"), &session.token, &call.call_id).await?;
        end_call(&mut a, &rid("end"), &session.token, &second.call_id).await?;

        phase("unblock both: logins and calls are admitted again");
        cluster.ctl_ok("a", &["unblock", "logins"])?;
        cluster.ctl_ok("a", &["unblock", "calls"])?;
        let status = cluster.status("a")?;
        assert_eq!(status["blocks"]["logins"], false);
        assert_eq!(status["blocks"]["calls"], false);
        login(&mut a, &rid("login"), "gate", "pw-gate").await?;
        start_call(&mut a, &rid("start"), &session.token).await?;
        let events = events(&cluster, "a")?;
        assert!(
            events
                .iter()
                .any(|(kind, m)| kind == "block" && m.contains("calls are blocked")),
            "{events:?}"
        );
        anyhow::Ok(())
    })
}

#[test]
fn wrong_passwords_are_rate_limited_and_bad_requests_get_clear_errors() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = start()?;
    add_user(&cluster, "a", "bob", "right")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = gateway(&cluster, "a").await?;

        phase("five wrong passwords, then even the right one is refused for a while");
        for _ in 0..5 {
            let wrong = login(&mut a, &rid("login"), "bob", "wrong")
                .await
                .expect_err("wrong");
            assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
        }
        let limited = login(&mut a, &rid("login"), "bob", "right")
            .await
            .expect_err("rate-limited");
        assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
        assert!(
            limited.message().contains("too many failed logins"),
            "{}",
            limited.message()
        );
        phase("an unknown user is refused like a wrong password");
        let unknown = login(&mut a, &rid("login"), "nobody", "x")
            .await
            .expect_err("unknown");
        assert_eq!(unknown.code(), Code::Unauthenticated);
        assert_eq!(unknown.message(), "wrong user name or password");

        phase("malformed requests");
        let no_id = login(&mut a, "", "bob", "right")
            .await
            .expect_err("no request id");
        assert_eq!(no_id.code(), Code::InvalidArgument);
        assert!(
            no_id.message().contains("request_id"),
            "{}",
            no_id.message()
        );
        let long = "x".repeat(200);
        let too_long = login(&mut a, &long, "bob", "right")
            .await
            .expect_err("long id");
        assert_eq!(too_long.code(), Code::InvalidArgument);
        let no_credential = a
            .login(tandem_proto::gateway::LoginRequest {
                request_id: rid("login"),
                user: "bob".into(),
                credential: None,
                client_kind: String::new(),
            })
            .await
            .expect_err("no credential");
        assert_eq!(no_credential.code(), Code::InvalidArgument);
        let bad_token = start_call(&mut a, &rid("start"), "not-a-token")
            .await
            .expect_err("token");
        assert_eq!(bad_token.code(), Code::Unauthenticated);
        let bad_resume = resume(&mut a, &"f".repeat(64))
            .await
            .expect_err("unknown token");
        assert_eq!(bad_resume.code(), Code::Unauthenticated);

        phase("clients cannot read password hashes or forge CDRs through the Data API");
        let mut data = common::data::client(&cluster, "a").await?;
        let read = common::data::query(&mut data, "SELECT password_hash FROM users", false)
            .await
            .expect_err("users is private");
        assert!(read.message().contains("private"), "{}", read.message());
        let forged = common::data::execute(
            &mut data,
            &rid("forge"),
            vec![common::data::statement("DELETE FROM cdrs", Vec::new())],
        )
        .await
        .expect_err("cdrs are the node's");
        assert!(
            forged.message().contains("written only by the node"),
            "{}",
            forged.message()
        );
        anyhow::Ok(())
    })?;
    phase("the node still serves after all of it");
    wait_serving(&cluster, "a")?;
    Ok(())
}

#[test]
fn tandemctl_user_adds_lists_changes_and_deletes_users() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = start()?;
    let runtime = tokio::runtime::Runtime::new()?;

    phase("add two users; one from a line of stdin");
    add_user(&cluster, "a", "carol", "first")?;
    let mut piped = cluster.ctl_command("a");
    piped
        .args(["user", "add", "dave"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = piped.spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(b"from-stdin\n")?;
    }
    let output = child.wait_with_output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    phase("bad input: a duplicate, a bad name, an unknown user");
    let duplicate = cluster.ctl("a", &["user", "add", "carol", "--password", "x"])?;
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    let bad = cluster.ctl("a", &["user", "add", "no spaces", "--password", "x"])?;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("user name"));
    let unknown = cluster.ctl("a", &["user", "del", "nobody"])?;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user"));

    phase("the list, on the passive too once replicated");
    let list: serde_json::Value =
        serde_json::from_str(&cluster.ctl_ok("a", &["user", "list", "--json"])?)?;
    let names: Vec<&str> = list
        .as_array()
        .map(|users| users.iter().filter_map(|u| u["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["carol", "dave"]);
    common::data::wait_in_sync(&cluster, "a")?;
    assert!(cluster.ctl_ok("b", &["user", "list"])?.contains("dave"));

    runtime.block_on(async {
        let mut a = gateway(&cluster, "a").await?;
        login(&mut a, &rid("login"), "dave", "from-stdin").await?;
        phase("passwd: the new password works, the old one does not");
        cluster.ctl_ok("a", &["user", "passwd", "carol", "--password", "second"])?;
        login(&mut a, &rid("login"), "carol", "second").await?;
        let old = login(&mut a, &rid("login"), "carol", "first")
            .await
            .expect_err("old");
        assert_eq!(old.code(), Code::Unauthenticated);
        phase("del: the user and its sessions are gone");
        let session = login(&mut a, &rid("login"), "dave", "from-stdin").await?;
        cluster.ctl_ok("a", &["user", "del", "dave"])?;
        let gone = resume(&mut a, &session.token).await.expect_err("deleted");
        assert_eq!(gone.code(), Code::Unauthenticated);
        anyhow::Ok(())
    })
}

#[test]
fn a_retried_login_keeps_one_session_and_tokens_expire_after_the_session_ttl() -> anyhow::Result<()>
{
    let _serial = serial();
    let spec = ClusterSpec::new().set_all("gateway.session_ttl", "3s");
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    add_user(&cluster, "a", "erin", "pw")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = gateway(&cluster, "a").await?;

        phase("a login retried with its request id: one session, and the new token works");
        let request_id = rid("login");
        let first = login(&mut a, &request_id, "erin", "pw").await?;
        let retried = login(&mut a, &request_id, "erin", "pw").await?;
        assert_eq!(retried.session_id, first.session_id);
        assert_ne!(
            retried.token, first.token,
            "the first token cannot be read back"
        );
        resume(&mut a, &retried.token).await?;
        assert_eq!(cluster.status("a")?["sessions"], 1);
        phase("the retry's password is checked too");
        let wrong = login(&mut a, &request_id, "erin", "nope")
            .await
            .expect_err("wrong");
        assert_eq!(wrong.code(), Code::Unauthenticated);

        phase("past session_ttl the token is refused as expired");
        let token = retried.token.clone();
        cluster
            .wait_until(WAIT, "the session to expire", |_| {
                let outcome = runtime_free(|| {
                    let cluster = &cluster;
                    let token = token.clone();
                    async move {
                        let mut client = gateway(cluster, "a").await?;
                        Ok(resume(&mut client, &token).await.err())
                    }
                })?;
                Ok(outcome.filter(|status| status.code() == Code::Unauthenticated))
            })
            .map(|status| assert!(status.message().contains("expired"), "{}", status.message()))?;
        assert_eq!(cluster.status("a")?["sessions"], 0);
        anyhow::Ok(())
    })
}
