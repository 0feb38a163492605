//! Durability across a clean shutdown and restart on the same data
//! directory (contract §6): groups, members, order, registry data,
//! revisions and the generated auth secret all survive.

use crate::support::inproc::*;
use convgroups::pb::*;

/// Builds varied state for alice and bob: groups (reordered and renamed),
/// members, registry data with every field, and a deleted group.
async fn build_state(s: &TestServer) {
    let mut alice = s.group_client("alice");
    let mut alice_cc = s.conv_client("alice");
    let mut bob = s.group_client("bob");
    upsert_ok(
        &mut alice_cc,
        vec![
            ConversationUpdate {
                show_name: Some("Ann \u{1F600}".into()),
                face_url: Some("https://example.com/a.png".into()),
                unread_count: Some(4),
                is_pinned: Some(true),
                order_key: Some(u64::MAX - 1),
                recv_opt: Some(RecvOpt::ReceiveNotNotifyExceptAt as i32),
                mark_list: Some(MarkList { values: vec![1, 7, 1 << 50] }),
                custom_data: Some((0..=255).collect()),
                has_group_at_info: Some(true),
                last_message: Some(LastMessage {
                    sender: "ann".into(),
                    text: "bring the cake".into(),
                    time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5 }),
                }),
                ..update("C2Cann")
            },
            ConversationUpdate { unread_count: Some(3), order_key: Some(10), ..update("GROUPteam") },
        ],
    )
    .await;
    create(&mut alice, "Family", &["C2Cann", "C2Cdad"]).await.unwrap();
    create(&mut alice, "Work", &["GROUPteam", "c2c_boss"]).await.unwrap();
    create(&mut alice, "Old", &["C2Cann"]).await.unwrap();
    create(&mut alice, "R&D \u{e9}", &["GROUPteam", "C2Cann"]).await.unwrap();
    reorder(&mut alice, &["Work", "R&D \u{e9}", "Old", "Family"]).await.unwrap();
    rename(&mut alice, "Work", "Job").await.unwrap();
    delete_group(&mut alice, "Old").await.unwrap();
    remove(&mut alice, "Family", &["C2Cdad"]).await.unwrap();
    add(&mut alice, "Family", &["C2Cmum"]).await.unwrap();
    create(&mut bob, "Bobs", &["C2Cann"]).await.unwrap();
}

/// After a shutdown and restart on the same directory, each user's groups,
/// display order, members, counts, registry data and revision are exactly
/// as before, and new revisions continue above the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_revision_survive_restart() {
    let s = TestServer::start().await;
    build_state(&s).await;
    let alice_before = user_state(&mut s.group_client("alice")).await;
    let bob_before = user_state(&mut s.group_client("bob")).await;
    assert_eq!(alice_before.groups.group_names, ["Job", "R&D \u{e9}", "Family"]);

    let s = s.restart().await;
    let mut alice = s.group_client("alice");
    assert_eq!(user_state(&mut alice).await, alice_before);
    assert_eq!(user_state(&mut s.group_client("bob")).await, bob_before);
    let mut members = list_ids(&mut alice, ConversationFilter { group_name: Some("Family".into()), ..filter() }).await;
    members.sort();
    assert_eq!(members, ["C2Cann", "C2Cmum"]);

    // Writing continues: expected_revision from before the restart still
    // matches, and the next revision is higher than every earlier one.
    let r = create_owned(&mut alice, "New", strings(&["C2Cx"]), Some(alice_before.groups.revision)).await.unwrap();
    assert!(r.revision > alice_before.groups.revision);
    assert!(r.revision > bob_before.groups.revision);
    assert_eq!(group_names(&mut alice).await, ["Job", "R&D \u{e9}", "Family", "New"]);
}

/// Mutations acknowledged just before shutdown are there after a second
/// restart too (nothing depends on a single clean cycle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_repeated_restarts() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "A", &["C2Ca"]).await.unwrap();
    let s = s.restart().await;
    let mut gc = s.group_client("alice");
    add(&mut gc, "A", &["C2Cb"]).await.unwrap();
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![ConversationUpdate { unread_count: Some(5), ..update("C2Cb") }]).await;
    let before = user_state(&mut gc).await;
    let s = s.restart().await;
    let mut gc = s.group_client("alice");
    assert_eq!(user_state(&mut gc).await, before);
    assert_eq!(group(&mut gc, "A").await.unwrap().unread_count, 5);
    s.shutdown().await;
}

/// The generated secret is kept in the data directory (mode 0600) and
/// reused, so tokens issued before a restart stay valid after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_secret_is_private_and_reused_across_restart() {
    let s = TestServer::start().await;
    let token = s.token("alice", false);
    let secret = s.secret_bytes();
    let path = s.data_dir().join(convgroups::auth::SECRET_FILE_NAME);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "auth-secret mode");
    }
    let s = s.restart().await;
    assert_eq!(s.secret_bytes(), secret, "the secret file is reused");
    let mut gc = s.group_client_with(Headers::new(&[("authorization", &format!("Bearer {token}"))]));
    create(&mut gc, "G", &["C2Cx"]).await.expect("a token from before the restart is accepted");
}
