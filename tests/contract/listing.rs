//! GetConversationList and GetUnreadCount: ordering, paging, filters,
//! grouped-but-unregistered conversations, group lists and unread totals
//! (contract §2 "ConversationFilter", §4 "Listing").

use std::collections::HashSet;

use crate::support::inproc::*;
use convgroups::pb::*;
use tonic::Code;

fn in_group(name: &str) -> ConversationFilter {
    ConversationFilter { group_name: Some(name.to_string()), ..filter() }
}

/// The listing order of the contract, computed locally.
fn contract_order(conversations: &mut [Conversation]) {
    conversations.sort_by(|a, b| {
        b.is_pinned
            .cmp(&a.is_pinned)
            .then(b.order_key.cmp(&a.order_key))
            .then(a.conversation_id.as_bytes().cmp(b.conversation_id.as_bytes()))
    });
}

/// Pinned first, then order_key descending (as unsigned 64-bit), then
/// conversation_id ascending; grouped-only conversations take part too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_orders_pinned_first_then_order_key_desc_then_id_asc() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let u = |id: &str, pinned: bool, key: u64| ConversationUpdate {
        is_pinned: Some(pinned),
        order_key: Some(key),
        ..update(id)
    };
    upsert_ok(
        &mut cc,
        vec![
            u("C2Cp1", true, 5),
            u("C2Cp3", true, 9),
            u("C2Cp2", true, 9),
            u("C2Cb", false, 50),
            u("C2Ca", false, 100),
            u("C2Cc", false, 50),
            u("GROUPz", false, 1000),
            u("C2Czz", false, 0),
            u("GROUPbig", false, u64::MAX),
            u("GROUPhigh", false, 1 << 63),
            u("GROUPlow", false, (1 << 63) - 1),
        ],
    )
    .await;
    create(&mut gc, "G", &["GROUPonly", "C2Ca"]).await.unwrap();

    let ids = list_ids(&mut gc, filter()).await;
    assert_eq!(
        ids,
        [
            "C2Cp2",
            "C2Cp3",
            "C2Cp1",
            "GROUPbig",
            "GROUPhigh",
            "GROUPlow",
            "GROUPz",
            "C2Ca",
            "C2Cb",
            "C2Cc",
            "C2Czz",
            "GROUPonly"
        ]
    );
}

/// 250 conversations walked with page sizes 7, 100, 0 (the default, 100),
/// 1000 and 1 000 000 (capped): every walk returns the full ordered listing
/// once, with full pages, a token on every page but the last, and
/// `is_finished` only on the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_complete_ordered_and_without_duplicates() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let ids = c2c_ids("p", 250);
    let updates: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ConversationUpdate {
            order_key: Some(((i * 37) % 50) as u64),
            is_pinned: Some(i % 25 == 0),
            ..update(id)
        })
        .collect();
    for chunk in updates.chunks(100) {
        upsert_ok(&mut cc, chunk.to_vec()).await;
    }
    let full = list_all(&mut gc, None).await;
    assert_eq!(full.len(), 250);
    let mut expected = full.clone();
    contract_order(&mut expected);
    assert_eq!(ids_of(&full), ids_of(&expected), "the listing follows the contract's order");
    let unique: HashSet<_> = ids_of(&full).into_iter().collect();
    assert_eq!(unique.len(), 250);

    for (page_size, effective) in [(7u32, 7usize), (100, 100), (0, 100), (1000, 1000), (1_000_000, 1000)] {
        let mut walked = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = list_page(&mut gc, None, page_size, &token).await.unwrap();
            pages += 1;
            let remaining = 250 - walked.len();
            assert_eq!(page.conversations.len(), remaining.min(effective), "page {pages} of size {page_size}");
            walked.extend(page.conversations);
            if walked.len() == 250 {
                assert!(page.is_finished, "last page of size {page_size} is finished");
                assert!(page.next_page_token.is_empty(), "last page of size {page_size} has no token");
                break;
            }
            assert!(!page.is_finished, "page {pages} of size {page_size} is not the last");
            assert!(!page.next_page_token.is_empty(), "page {pages} of size {page_size} has a token");
            token = page.next_page_token;
        }
        assert_eq!(pages, 250usize.div_ceil(effective), "pages of size {page_size}");
        assert_eq!(ids_of(&walked), ids_of(&full), "walk with page size {page_size}");
    }

    // The same holds for a filtered walk.
    let pinned_filter = ConversationFilter { conversation_ids: ids[..60].to_vec(), ..filter() };
    let filtered = list_all_paged(&mut gc, Some(pinned_filter.clone()), 1000).await.unwrap();
    assert_eq!(filtered.len(), 60);
    let walked = list_all_paged(&mut gc, Some(pinned_filter), 7).await.unwrap();
    assert_eq!(ids_of(&walked), ids_of(&filtered));
}

/// With the default limits, a page never holds more than 1000 conversations
/// however large `page_size` is, and the walk continues after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_is_capped_at_1000() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let ids = c2c_ids("cap", 1001);
    for chunk in ids.chunks(100) {
        upsert_ok(&mut cc, chunk.iter().map(|id| update(id)).collect()).await;
    }
    for page_size in [1001, 5000, u32::MAX] {
        let page = list_page(&mut gc, None, page_size, "").await.unwrap();
        assert_eq!(page.conversations.len(), 1000, "page_size {page_size}");
        assert!(!page.is_finished);
        let rest = list_page(&mut gc, None, page_size, &page.next_page_token).await.unwrap();
        assert_eq!(rest.conversations.len(), 1);
        assert!(rest.is_finished);
        assert!(rest.next_page_token.is_empty());
        let mut all = ids_of(&page.conversations);
        all.extend(ids_of(&rest.conversations));
        all.sort();
        assert_eq!(all, ids);
    }
}

/// The default page size and the cap follow the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_sizes_follow_the_configuration() {
    let s = TestServer::start_with(|c| {
        c.limits.default_page_size = 3;
        c.limits.max_page_size = 5;
    })
    .await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, c2c_ids("x", 12).iter().map(|id| update(id)).collect()).await;
    assert_eq!(list_page(&mut gc, None, 0, "").await.unwrap().conversations.len(), 3);
    assert_eq!(list_page(&mut gc, None, 4, "").await.unwrap().conversations.len(), 4);
    assert_eq!(list_page(&mut gc, None, 50, "").await.unwrap().conversations.len(), 5);
    let all = list_all_paged(&mut gc, None, 0).await.unwrap();
    assert_eq!(ids_of(&all), c2c_ids("x", 12));
}

/// A page token that was never issued, or was issued for another filter, is
/// INVALID_ARGUMENT / INVALID_PAGE_TOKEN naming page_token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_page_token_is_invalid_argument() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, c2c_ids("t", 10).iter().map(|id| update(id)).collect()).await;
    create(&mut gc, "G", &["C2Ct0000", "C2Ct0001", "C2Ct0002"]).await.unwrap();

    for token in ["garbage", "!!!", "AAAAAAAAAAAAAAAAAAAAAAAA", "\u{e9}t\u{e9}", &"z".repeat(10_000)] {
        let st = expect_err(list_page(&mut gc, None, 2, token).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None, "page_token");
    }
    let page = list_page(&mut gc, Some(in_group("G")), 2, "").await.unwrap();
    assert!(!page.next_page_token.is_empty());
    let st = expect_err(list_page(&mut gc, None, 2, &page.next_page_token).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None, "page_token");
    let other = ConversationFilter { r#type: Some(ConversationType::C2c as i32), ..filter() };
    let st = expect_err(list_page(&mut gc, Some(other), 2, &page.next_page_token).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None, "page_token");
    // The token still works with its own filter.
    let next = list_page(&mut gc, Some(in_group("G")), 2, &page.next_page_token).await.unwrap();
    assert_eq!(ids_of(&next.conversations), ["C2Ct0002"]);
    assert!(next.is_finished);
}

/// While the list changes, keyset paging still returns every conversation
/// that keeps its position exactly once, and finds one added behind the
/// cursor; a conversation that moves behind the cursor is listed again at
/// its new place (as the proto documents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_unmoved_conversations_exactly_once_while_the_list_changes() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let ids = c2c_ids("m", 30);
    let updates =
        ids.iter().enumerate().map(|(i, id)| ConversationUpdate { order_key: Some(100 - i as u64), ..update(id) });
    upsert_ok(&mut cc, updates.collect()).await;

    let first = list_page(&mut gc, None, 10, "").await.unwrap();
    assert_eq!(ids_of(&first.conversations), ids[..10].to_vec());
    // Move the first conversation to the very end, and add a new one there too.
    upsert_ok(
        &mut cc,
        vec![
            ConversationUpdate { order_key: Some(0), ..update(&ids[0]) },
            ConversationUpdate { order_key: Some(0), ..update("C2Cnew") },
        ],
    )
    .await;
    let mut seen = ids_of(&first.conversations);
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = list_page(&mut gc, None, 10, &token).await.unwrap();
        seen.extend(ids_of(&page.conversations));
        token = page.next_page_token;
    }
    let count = |id: &str| seen.iter().filter(|s| s.as_str() == id).count();
    for id in &ids[1..] {
        assert_eq!(count(id), 1, "{id} should come exactly once: {seen:?}");
    }
    assert_eq!(count("C2Cnew"), 1, "the conversation added behind the cursor is found: {seen:?}");
    assert_eq!(count(&ids[0]), 2, "the moved conversation is listed again at its new place: {seen:?}");
    assert_eq!(seen.len(), 32);
}

/// A conversation that is grouped but never registered is listed with its
/// id, type and peer id, its groups, and defaults elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_but_unregistered_conversations_are_listed_with_defaults() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![update("C2Cregistered")]).await;
    let group_id = create(&mut gc, "G", &["c2c_peer", "group_chat"]).await.unwrap().group.unwrap().group_id;

    let all = list_all(&mut gc, None).await;
    assert_eq!(ids_of(&all), ["C2Cpeer", "C2Cregistered", "GROUPchat"]);
    let defaults = Conversation { recv_opt: RecvOpt::Receive as i32, ..Default::default() };
    assert_eq!(
        all[0],
        Conversation {
            conversation_id: "C2Cpeer".into(),
            r#type: ConversationType::C2c as i32,
            user_id: "peer".into(),
            conversation_group_list: strings(&["G"]),
            conversation_group_ids: vec![group_id.clone()],
            ..defaults.clone()
        }
    );
    assert_eq!(
        all[2],
        Conversation {
            conversation_id: "GROUPchat".into(),
            r#type: ConversationType::Group as i32,
            group_id: "chat".into(),
            conversation_group_list: strings(&["G"]),
            conversation_group_ids: vec![group_id],
            ..defaults
        }
    );
    assert!(all[1].registered);
    assert!(all[1].update_time.is_some());
}

/// Each conversation's conversation_group_list follows the display order,
/// through reorder and rename.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_group_list_follows_the_display_order() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Z", &["C2Cy"]).await.unwrap();
    create(&mut gc, "M", &["C2Cy"]).await.unwrap();
    create(&mut gc, "A", &["C2Cx"]).await.unwrap();
    add(&mut gc, "Z", &["C2Cx"]).await.unwrap();
    add(&mut gc, "M", &["C2Cx"]).await.unwrap();
    assert_eq!(find_conversation(&mut gc, "C2Cx").await.unwrap().conversation_group_list, ["Z", "M", "A"]);

    reorder(&mut gc, &["A", "Z", "M"]).await.unwrap();
    assert_eq!(find_conversation(&mut gc, "C2Cx").await.unwrap().conversation_group_list, ["A", "Z", "M"]);
    rename(&mut gc, "M", "B").await.unwrap();
    assert_eq!(find_conversation(&mut gc, "C2Cx").await.unwrap().conversation_group_list, ["A", "Z", "B"]);
    assert_eq!(find_conversation(&mut gc, "C2Cy").await.unwrap().conversation_group_list, ["Z", "B"]);
}

/// The fixture of the filter tests: all order keys 0, none pinned, so the
/// listing is by id.
async fn filter_fixture(s: &TestServer) {
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let c = |id: &str, unread: u32, marks: &[u64], at: bool, recv: RecvOpt| ConversationUpdate {
        unread_count: Some(unread),
        mark_list: Some(MarkList { values: marks.to_vec() }),
        has_group_at_info: Some(at),
        recv_opt: Some(recv as i32),
        ..update(id)
    };
    upsert_ok(
        &mut cc,
        vec![
            c("C2Ca", 3, &[1], false, RecvOpt::Receive),
            c("C2Cb", 0, &[], true, RecvOpt::Receive),
            c("GROUPc", 5, &[1, 2], true, RecvOpt::NotReceive),
            c("GROUPd", 0, &[2], false, RecvOpt::Receive),
            c("C2Ce", 2, &[], false, RecvOpt::ReceiveNotNotify),
            c("C2Cf", 4, &[], false, RecvOpt::Receive),
        ],
    )
    .await;
    create(&mut gc, "G1", &["C2Ca", "C2Cb", "C2Cf"]).await.unwrap();
    create(&mut gc, "G2", &["C2Cb", "GROUPd", "GROUPonly"]).await.unwrap();
    // Bob's conversations must never show up in alice's results.
    let mut bob = s.conv_client("bob");
    upsert_ok(
        &mut bob,
        vec![c("C2Ca", 100, &[1], true, RecvOpt::Receive), c("C2Cbob", 1, &[], false, RecvOpt::Receive)],
    )
    .await;
}

/// Each filter field selects what the contract says; unset fields do not
/// filter and set fields combine with AND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_by_each_field_and_combine_with_and() {
    let s = TestServer::start().await;
    filter_fixture(&s).await;
    let mut gc = s.group_client("alice");
    let f = filter;
    let cases: Vec<(&str, ConversationFilter, &[&str])> = vec![
        ("none", f(), &["C2Ca", "C2Cb", "C2Ce", "C2Cf", "GROUPc", "GROUPd", "GROUPonly"]),
        (
            "type C2C",
            ConversationFilter { r#type: Some(ConversationType::C2c as i32), ..f() },
            &["C2Ca", "C2Cb", "C2Ce", "C2Cf"],
        ),
        (
            "type GROUP",
            ConversationFilter { r#type: Some(ConversationType::Group as i32), ..f() },
            &["GROUPc", "GROUPd", "GROUPonly"],
        ),
        ("group G1", in_group("G1"), &["C2Ca", "C2Cb", "C2Cf"]),
        ("group G2", in_group("G2"), &["C2Cb", "GROUPd", "GROUPonly"]),
        ("no group", in_group(""), &["C2Ce", "GROUPc"]),
        ("mark 1", ConversationFilter { mark_type: Some(1), ..f() }, &["C2Ca", "GROUPc"]),
        ("mark 2", ConversationFilter { mark_type: Some(2), ..f() }, &["GROUPc", "GROUPd"]),
        ("no mark", ConversationFilter { mark_type: Some(0), ..f() }, &["C2Cb", "C2Ce", "C2Cf", "GROUPonly"]),
        ("mark 99", ConversationFilter { mark_type: Some(99), ..f() }, &[]),
        ("unread", ConversationFilter { has_unread_count: Some(true), ..f() }, &["C2Ca", "C2Ce", "C2Cf", "GROUPc"]),
        ("no unread", ConversationFilter { has_unread_count: Some(false), ..f() }, &["C2Cb", "GROUPd", "GROUPonly"]),
        ("@ info", ConversationFilter { has_group_at_info: Some(true), ..f() }, &["C2Cb", "GROUPc"]),
        (
            "no @ info",
            ConversationFilter { has_group_at_info: Some(false), ..f() },
            &["C2Ca", "C2Ce", "C2Cf", "GROUPd", "GROUPonly"],
        ),
        (
            "ids",
            ConversationFilter { conversation_ids: strings(&["c2c_a", "GROUPonly", "C2Cnobody", "C2Cbob"]), ..f() },
            &["C2Ca", "GROUPonly"],
        ),
        (
            "GROUP in G2 without unread",
            ConversationFilter {
                r#type: Some(ConversationType::Group as i32),
                group_name: Some("G2".into()),
                has_unread_count: Some(false),
                ..f()
            },
            &["GROUPd", "GROUPonly"],
        ),
        (
            "C2C, no mark, no group",
            ConversationFilter {
                r#type: Some(ConversationType::C2c as i32),
                mark_type: Some(0),
                group_name: Some(String::new()),
                ..f()
            },
            &["C2Ce"],
        ),
        (
            "ids in G1 with unread",
            ConversationFilter {
                conversation_ids: strings(&["C2Ca", "C2Cb", "GROUPc"]),
                group_name: Some("G1".into()),
                has_unread_count: Some(true),
                ..f()
            },
            &["C2Ca"],
        ),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(list_ids(&mut gc, filter).await, expected, "filter {name}");
    }
}

/// Bad filters: an unknown group is GROUP_NOT_FOUND (51009), an unknown type
/// or more than 100 ids is INVALID_ARGUMENT naming the field; GetUnreadCount
/// checks its filter the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_rejected_naming_the_field() {
    let s = TestServer::start().await;
    filter_fixture(&s).await;
    let mut gc = s.group_client("alice");

    let unknown_group = in_group("Nope");
    let st = expect_err(list_page(&mut gc, Some(unknown_group.clone()), 0, "").await);
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    let st = expect_err(unread(&mut gc, Some(unknown_group)).await);
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");

    let bad_type = ConversationFilter { r#type: Some(42), ..filter() };
    let st = expect_err(list_page(&mut gc, Some(bad_type.clone()), 0, "").await);
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(st.message().contains("type"), "message names the field: {:?}", st.message());
    let st = expect_err(unread(&mut gc, Some(bad_type)).await);
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");

    let too_many = ConversationFilter { conversation_ids: c2c_ids("z", 101), ..filter() };
    let st = expect_err(list_page(&mut gc, Some(too_many), 0, "").await);
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(st.message().contains("conversation_ids"), "message names the field: {:?}", st.message());
    let at_limit = ConversationFilter { conversation_ids: c2c_ids("z", 100), ..filter() };
    assert!(list_page(&mut gc, Some(at_limit), 0, "").await.unwrap().conversations.is_empty());
}

/// GetUnreadCount sums unread_count over the matching conversations whose
/// recv_opt is RECEIVE, for each kind of filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_count_sums_receiving_matching_conversations() {
    let s = TestServer::start().await;
    filter_fixture(&s).await;
    let mut gc = s.group_client("alice");
    let f = filter;
    // Receiving: C2Ca 3, C2Cf 4. Muted: GROUPc 5, C2Ce 2.
    let cases: Vec<(&str, Option<ConversationFilter>, u64)> = vec![
        ("no filter", None, 7),
        ("empty filter", Some(f()), 7),
        ("G1", Some(in_group("G1")), 7),
        ("G2", Some(in_group("G2")), 0),
        ("no group", Some(in_group("")), 0),
        ("type C2C", Some(ConversationFilter { r#type: Some(ConversationType::C2c as i32), ..f() }), 7),
        ("type GROUP", Some(ConversationFilter { r#type: Some(ConversationType::Group as i32), ..f() }), 0),
        ("mark 1", Some(ConversationFilter { mark_type: Some(1), ..f() }), 3),
        ("ids", Some(ConversationFilter { conversation_ids: strings(&["C2Cf", "GROUPc", "C2Ce"]), ..f() }), 4),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(unread(&mut gc, filter).await.unwrap(), expected, "unread count, filter {name}");
    }
    assert_eq!(unread(&mut s.group_client("bob"), None).await.unwrap(), 101, "bob's own total");
}

/// A group's unread_count sums only members whose recv_opt is RECEIVE, and
/// follows changes of unread counts, receive options and membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_unread_count_excludes_muted_members() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let c = |id: &str, unread: u32, recv: RecvOpt| ConversationUpdate {
        unread_count: Some(unread),
        recv_opt: Some(recv as i32),
        ..update(id)
    };
    upsert_ok(
        &mut cc,
        vec![
            c("C2Cr1", 2, RecvOpt::Receive),
            c("C2Cr2", 3, RecvOpt::Receive),
            c("C2Cm1", 10, RecvOpt::NotReceive),
            c("C2Cm2", 20, RecvOpt::ReceiveNotNotify),
            c("C2Cm3", 40, RecvOpt::ReceiveNotNotifyExceptAt),
            c("C2Cm4", 80, RecvOpt::NotReceiveExceptAt),
            c("C2Cout", 1000, RecvOpt::Receive),
        ],
    )
    .await;
    create(&mut gc, "G", &["C2Cr1", "C2Cr2", "C2Cm1", "C2Cm2", "C2Cm3", "C2Cm4", "C2Cunregistered"]).await.unwrap();
    let g = group(&mut gc, "G").await.unwrap();
    assert_eq!((g.conversation_count, g.unread_count), (7, 5));
    assert_eq!(unread(&mut gc, Some(in_group("G"))).await.unwrap(), 5);

    upsert_ok(
        &mut cc,
        vec![c("C2Cm1", 10, RecvOpt::Receive), ConversationUpdate { unread_count: Some(0), ..update("C2Cr1") }],
    )
    .await;
    assert_eq!(group(&mut gc, "G").await.unwrap().unread_count, 13);
    assert_eq!(unread(&mut gc, Some(in_group("G"))).await.unwrap(), 13);

    remove(&mut gc, "G", &["C2Cr2"]).await.unwrap();
    add(&mut gc, "G", &["C2Cout"]).await.unwrap();
    assert_eq!(group(&mut gc, "G").await.unwrap().unread_count, 1010);
    assert_eq!(unread(&mut gc, None).await.unwrap(), 1013);
}

/// One step of [`first_pages_agree_cached_or_not`], applied to a server.
#[derive(Clone, Copy)]
enum Step {
    Upsert(&'static str, Option<&'static str>, Option<u32>, Option<bool>, Option<u64>),
    Create(&'static str, &'static [&'static str]),
    Add(&'static str, &'static [&'static str]),
    Remove(&'static str, &'static [&'static str]),
    Rename(&'static str, &'static str),
    DeleteGroup(&'static str),
    DeleteConversation(&'static str),
    /// An admin acting for the user.
    AdminCreate(&'static str, &'static [&'static str]),
}

/// Applies `step`; returns the revision its answer reported.
async fn apply(s: &TestServer, step: Step) -> u64 {
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    match step {
        Step::Upsert(id, name, unread, pinned, key) => {
            let u = ConversationUpdate {
                show_name: name.map(str::to_string),
                unread_count: unread,
                is_pinned: pinned,
                order_key: key,
                ..update(id)
            };
            upsert_ok(&mut cc, vec![u]).await.revision
        }
        Step::Create(name, ids) => create(&mut gc, name, ids).await.unwrap().revision,
        Step::Add(name, ids) => add(&mut gc, name, ids).await.unwrap().revision,
        Step::Remove(name, ids) => remove(&mut gc, name, ids).await.unwrap().revision,
        Step::Rename(old, new) => rename(&mut gc, old, new).await.unwrap().revision,
        Step::DeleteGroup(name) => delete_group(&mut gc, name).await.unwrap().revision,
        Step::DeleteConversation(id) => delete_convs(&mut cc, &[id]).await.unwrap().revision,
        Step::AdminCreate(name, ids) => {
            create(&mut s.admin_group_client(Some("alice")), name, ids).await.unwrap().revision
        }
    }
}

/// A first page without what two servers number or stamp independently
/// (times; revisions, which on etcd count every server sharing the
/// cluster), or the refusal's code. The page's revision must be at least
/// `seen`, the revision of the server's last step.
async fn first_page(
    gc: &mut GroupClient,
    filter: &ConversationFilter,
    size: u32,
    seen: u64,
) -> Result<GetConversationListResponse, Code> {
    let mut page = list_page(gc, Some(filter.clone()), size, "").await.map_err(|status| status.code())?;
    assert!(page.revision >= seen, "a page at revision {} after a step at {seen}", page.revision);
    page.revision = 0;
    for c in &mut page.conversations {
        c.update_time = None;
    }
    Ok(page)
}

/// First pages of GetConversationList are answered from a cache of encoded
/// pages per user (`--first-page-cache-users`, sled): after every kind of
/// change, every first page — each filter and page size read twice, so the
/// second is answered from the cache where there is one — is the page a
/// server without the cache gives after the same steps (but for its
/// revision, which must be at least the last step's); with the cache
/// holding one user, and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_pages_agree_cached_or_not() {
    let steps = [
        Step::Upsert("C2Cann", Some("Ann"), Some(2), None, Some(5)),
        Step::Upsert("C2Cbob", Some("Bob"), None, None, Some(9)),
        Step::Create("A", &["C2Cann", "C2Ccid"]),
        Step::Upsert("C2Cann", Some("Annie"), None, None, None),
        Step::Upsert("C2Ccid", None, Some(4), Some(true), None),
        Step::Add("A", &["C2Cbob"]),
        Step::AdminCreate("B", &["C2Cbob", "C2Cdan"]),
        Step::Rename("A", "A2"),
        Step::Upsert("C2Cbob", None, Some(0), None, Some(1)),
        Step::Remove("A2", &["C2Cann"]),
        Step::DeleteConversation("C2Ccid"),
        Step::DeleteGroup("B"),
        Step::Upsert("C2Cdan", Some("Dan"), None, Some(true), Some(7)),
    ];
    let filters =
        [filter(), in_group("A"), in_group("A2"), ConversationFilter { has_unread_count: Some(true), ..filter() }];
    let reference = TestServer::start_with(|c| c.server.first_page_cache_users = 0).await;
    let mut cached = Vec::new();
    for users in [1000, 1] {
        cached.push((users, TestServer::start_with(|c| c.server.first_page_cache_users = users).await));
    }
    let mut expected_gc = reference.group_client("alice");
    let mut seen = vec![0; cached.len()];
    for (i, step) in steps.into_iter().enumerate() {
        let reference_seen = apply(&reference, step).await;
        for ((_, s), seen) in cached.iter().zip(&mut seen) {
            *seen = apply(s, step).await;
        }
        // Every other step reads the combinations backwards, so the first
        // read after a step asks for the page the cache kept before it: a
        // page served from a stale entry would show.
        let mut combinations: Vec<(&ConversationFilter, u32)> =
            filters.iter().flat_map(|f| [(f, 2), (f, 100)]).collect();
        if i % 2 == 1 {
            combinations.reverse();
        }
        for (f, size) in combinations {
            // A group filter naming a missing group is an error on both.
            let expected = first_page(&mut expected_gc, f, size, reference_seen).await;
            for ((users, s), seen) in cached.iter().zip(&seen) {
                let mut gc = s.group_client("alice");
                for read in ["first", "second"] {
                    let got = first_page(&mut gc, f, size, *seen).await;
                    assert_eq!(got, expected, "step {i}, cache {users}, {f:?} size {size}, {read} read");
                }
            }
        }
    }
    // Another user never gets alice's page.
    for (users, s) in &cached {
        let page = first_page(&mut s.group_client("bob"), &filter(), 100, 0).await.unwrap();
        assert!(page.conversations.is_empty(), "cache {users}: bob's page is his own");
    }
}

/// A page and an unread total are the state at their revision: a commit
/// that lands while they are read is either wholly in them or not at all.
/// Every write below sets the same unread count on all of a user's
/// conversations in one UpsertConversations (one revision), so every page
/// read meanwhile must show one value, and every total must be that value
/// times the count. (Reads run beside the writer on sled, where a page is
/// many gets; the test failed before the read checked that no commit of the
/// user landed during it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_commits_show_each_commit_whole() {
    const CONVERSATIONS: u32 = 50;
    const WRITES: u32 = 150;
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let ids: Vec<String> = (0..CONVERSATIONS).map(|i| format!("C2Cpeer{i:02}")).collect();
    let all = move |unread: u32| -> Vec<ConversationUpdate> {
        ids.iter().map(|id| ConversationUpdate { unread_count: Some(unread), ..update(id) }).collect()
    };
    upsert_ok(&mut cc, all(0)).await;
    let writer = tokio::spawn(async move {
        for n in 1..=WRITES {
            upsert_ok(&mut cc, all(n)).await;
        }
    });
    let (mut pages, mut totals, mut torn) = (0u32, 0u32, Vec::new());
    while !writer.is_finished() {
        let page = list_page(&mut gc, None, 100, "").await.expect("page");
        assert_eq!(page.conversations.len(), CONVERSATIONS as usize);
        let values: std::collections::BTreeSet<u32> = page.conversations.iter().map(|c| c.unread_count).collect();
        if values.len() != 1 {
            torn.push(format!("page at revision {}: unread counts {values:?}", page.revision));
        }
        pages += 1;
        let total = unread(&mut gc, None).await.expect("unread");
        if total % u64::from(CONVERSATIONS) != 0 {
            torn.push(format!("unread total {total}, not a multiple of {CONVERSATIONS}"));
        }
        totals += 1;
    }
    writer.await.expect("writer");
    assert!(torn.is_empty(), "{} of {pages} pages and {totals} totals mixed two commits: {torn:?}", torn.len());
    assert!(pages > 10, "only {pages} pages were read while the writes ran");
}
