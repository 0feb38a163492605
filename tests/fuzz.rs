//! A stable-Rust fuzz harness for the code that meets untrusted bytes first:
//! id and name validation, request decoding and conversion, page tokens,
//! and bearer-token checking (the authenticator every call goes through).
//!
//! Each target is a `fn(&[u8])` that panics when a property fails, the
//! shape cargo-fuzz uses (`fuzz/` runs the same targets under libFuzzer on
//! nightly). The driver feeds every target random bytes and mutations of a
//! corpus of valid inputs for a bounded time:
//!
//! * `FUZZ_SECONDS` (default 4) per target; `FUZZ_SECONDS=600 cargo test
//!   --release --test fuzz` for a long run by hand.
//! * `FUZZ_SEED` to replay a run (the seed is printed on failure, with the
//!   input in hex: turn it into a `regression_*` test below).
//!
//! Properties are checked against oracles written from the contract (what
//! is a valid id, name, filter, token), not against the server's code. The
//! stored-value encoding (`store::encoding`) is private to the store and is not
//! reached from here.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use convgroups::auth::{Authenticator, Caller, Secret, USER_HEADER};
use convgroups::config::Limits;
use convgroups::domain::{
    check_group_name, ConversationFilter, ConversationId, ConversationKind, ItemCode, ItemResults, ListPosition,
    RecvOpt, UserId,
};
use convgroups::error::Error;
use convgroups::pb;
use convgroups::service::convert;
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};

// ---------------------------------------------------------------------------
// Oracles, from the contract
// ---------------------------------------------------------------------------

/// §3: 1..=128 bytes of printable ASCII without spaces.
fn is_user_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// §4: the canonical form of a conversation id, if it is one.
fn canonical(raw: &str) -> Option<String> {
    for (prefix, canon) in [("C2C", "C2C"), ("GROUP", "GROUP"), ("c2c_", "C2C"), ("group_", "GROUP")] {
        if let Some(peer) = raw.strip_prefix(prefix) {
            return is_user_id(peer).then(|| format!("{canon}{peer}"));
        }
    }
    None
}

/// §4: 1..=max bytes of UTF-8, no control characters.
fn is_group_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

fn small_limits() -> Limits {
    Limits {
        max_groups: 3,
        max_group_name_bytes: 6,
        max_conversations_per_group: 4,
        max_ids_per_request: 4,
        max_pinned: 1,
        max_pinned_per_group: 1,
        max_custom_data_bytes: 3,
        max_text_field_bytes: 8,
        max_marks: 2,
        max_rule_ids: 2,
        max_group_icon_bytes: 4,
        max_group_custom_data_bytes: 3,
        default_page_size: 3,
        max_page_size: 4,
    }
}

fn limits(selector: u8) -> Limits {
    if selector & 1 == 0 {
        Limits::default()
    } else {
        small_limits()
    }
}

// ---------------------------------------------------------------------------
// Target: ids and names
// ---------------------------------------------------------------------------

/// `ConversationId::parse`, `UserId::parse`, `check_group_name` and batch
/// classification agree with the contract's rules on any string.
pub fn target_ids(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);

    match ConversationId::parse(&text) {
        Ok(id) => {
            assert_eq!(Some(id.as_str().to_string()), canonical(&text), "{text:?}");
            let again = ConversationId::parse(id.as_str()).expect("canonical ids parse");
            assert_eq!(again, id, "canonical form is a fixed point");
            let (kind, prefix) = if id.as_str().starts_with("C2C") {
                (ConversationKind::C2c, "C2C")
            } else {
                (ConversationKind::Group, "GROUP")
            };
            assert_eq!(id.kind(), kind);
            assert_eq!(format!("{prefix}{}", id.peer()), id.as_str());
        }
        Err(message) => {
            assert_eq!(canonical(&text), None, "{text:?} was refused: {message}");
            assert!(!message.is_empty());
        }
    }
    assert_eq!(UserId::parse(&text).is_ok(), is_user_id(&text), "user id {text:?}");
    let max = usize::from(selector % 40);
    assert_eq!(check_group_name(&text, max).is_ok(), is_group_name(&text, max), "name {text:?} max {max}");
    let limits = limits(selector);
    let checked = convert::new_group_name("group_name", text.to_string(), &limits);
    assert_eq!(checked.is_ok(), is_group_name(&text, limits.max_group_name_bytes), "{text:?}");
    if let Err(e) = checked {
        assert!(matches!(e, Error::InvalidGroupName { field: "group_name", .. }), "{e:?}");
        assert!(e.to_string().contains("group_name"), "{e}");
    }

    // The same text as a list of ids (one per line).
    let raw: Vec<String> = text.split('\n').map(str::to_string).collect();
    check_classification(&raw);
}

/// Batch classification: invalid ids and later duplicates (after
/// normalisation) fail, in request order; the rest are items.
fn check_classification(raw: &[String]) {
    let (items, result) = ItemResults::classify_ids(raw);
    let outcome = result.finish(0);
    let mut seen = HashSet::new();
    let mut expected_items = Vec::new();
    let mut expected_failed = Vec::new();
    for (index, r) in raw.iter().enumerate() {
        match canonical(r) {
            None => expected_failed.push((r.clone(), ItemCode::InvalidConversationId)),
            Some(id) if !seen.insert(id.clone()) => expected_failed.push((r.clone(), ItemCode::DuplicateInRequest)),
            Some(id) => expected_items.push((index, r.clone(), id)),
        }
    }
    let got_items: Vec<(usize, String, String)> =
        items.iter().map(|i| (i.index, i.raw.clone(), i.id.as_str().to_string())).collect();
    assert_eq!(got_items, expected_items, "items of {raw:?}");
    let got_failed: Vec<(String, ItemCode)> = outcome.failed.iter().map(|f| (f.raw_id.clone(), f.code)).collect();
    assert_eq!(got_failed, expected_failed, "failures of {raw:?}");
    assert!(outcome.failed.iter().all(|f| !f.message.is_empty()));
    assert!(outcome.succeeded.is_empty());
}

// ---------------------------------------------------------------------------
// Target: page tokens
// ---------------------------------------------------------------------------

/// A few filters tokens are bound to.
fn filters() -> Vec<ConversationFilter> {
    let id = |s: &str| ConversationId::parse(s).unwrap();
    vec![
        ConversationFilter::default(),
        ConversationFilter { group_name: Some(String::new()), ..Default::default() },
        ConversationFilter { group_name: Some("Work".into()), mark_type: Some(0), ..Default::default() },
        ConversationFilter { kind: Some(ConversationKind::C2c), has_unread_count: Some(true), ..Default::default() },
        ConversationFilter { conversation_ids: vec![id("C2Ca"), id("GROUPb")], ..Default::default() },
        ConversationFilter { has_group_at_info: Some(false), mark_type: Some(u64::MAX), ..Default::default() },
    ]
}

fn b64(raw: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Whatever decodes is a position the listing could have issued, and it
/// re-encodes to a token that decodes to the same position; a token decodes
/// only with the filter it was issued for.
pub fn target_page_token(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let filters = filters();
    let filter = &filters[usize::from(selector) % filters.len()];
    let other = &filters[(usize::from(selector) + 1) % filters.len()];
    let check_decoded = |token: &str, f: &ConversationFilter| match convert::decode_page_token(token, f) {
        Ok(None) => assert!(token.is_empty(), "only the empty token means the first page"),
        Ok(Some(position)) => {
            assert!(position.unpinned <= 1, "{position:?}");
            let id = ConversationId::parse(&position.id).expect("a decoded position names a valid id");
            assert_eq!(id.as_str(), position.id, "decoded ids are canonical");
            let again = convert::encode_page_token(f, &position);
            assert_eq!(convert::decode_page_token(&again, f).unwrap(), Some(position.clone()));
            if f.fingerprint() != other.fingerprint() {
                assert!(convert::decode_page_token(&again, other).is_err(), "a token is bound to its filter");
            }
        }
        Err(e) => assert!(matches!(e, Error::InvalidPageToken), "{e:?}"),
    };
    match selector >> 6 {
        // Any text as a token.
        0 => check_decoded(&String::from_utf8_lossy(rest), filter),
        // Any bytes, base64url-encoded, as a token.
        1 => check_decoded(&b64(rest), filter),
        // A real token with bytes of its decoded form overwritten.
        2 => {
            let position = position_from(rest);
            let token = convert::encode_page_token(filter, &position);
            // A filter of one group reads its tokens as that group's order
            // (`group` is then set): the rest of the position comes back.
            let decoded = convert::decode_page_token(&token, filter).unwrap().expect("a position");
            assert_eq!(
                (decoded.unpinned, decoded.inverted_order_key, &decoded.id),
                (position.unpinned, position.inverted_order_key, &position.id)
            );
            let again = convert::encode_page_token(filter, &decoded);
            assert_eq!(convert::decode_page_token(&again, filter).unwrap(), Some(decoded.clone()));
            let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap();
            for pair in rest.chunks(2).take(4) {
                if let [at, value] = pair {
                    let i = usize::from(*at) % raw.len();
                    raw[i] = *value;
                }
            }
            check_decoded(&b64(&raw), filter);
        }
        // A real token with its text cut or extended.
        _ => {
            let position = position_from(rest);
            let token = convert::encode_page_token(filter, &position);
            let cut = usize::from(rest.first().copied().unwrap_or(0)) % (token.len() + 1);
            check_decoded(&token[..cut], filter);
            check_decoded(&format!("{token}{}", String::from_utf8_lossy(rest)), filter);
        }
    }
}

/// A valid listing position made from bytes.
fn position_from(bytes: &[u8]) -> ListPosition {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(bytes.iter().skip(1)) {
        *k = *b;
    }
    let peer: String = bytes.iter().skip(9).map(|b| char::from(0x21 + b % 94)).take(128).collect();
    let peer = if peer.is_empty() { "x".to_string() } else { peer };
    let prefix = if bytes.first().is_some_and(|b| b & 2 == 0) { "C2C" } else { "GROUP" };
    ListPosition {
        group: None,
        unpinned: bytes.first().map_or(0, |b| b & 1),
        inverted_order_key: u64::from_be_bytes(key),
        id: format!("{prefix}{peer}"),
    }
}

// ---------------------------------------------------------------------------
// Target: requests (protobuf decoding, then the service's conversion)
// ---------------------------------------------------------------------------

/// Decodes, then re-encodes: whatever decodes round-trips.
fn decode<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let message = M::decode(bytes).ok()?;
    let again = M::decode(message.encode_to_vec().as_slice()).expect("a re-encoded message decodes");
    assert_eq!(again, message, "round trip");
    Some(message)
}

/// The request types, in the order of the selector byte.
const REQUEST_TYPES: usize = 13;

/// Any bytes as any request: decoding never panics, and what decodes is
/// converted exactly as the contract says (validation verdicts, the field
/// named, normalised ids).
pub fn target_request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else { return };
    let limits = limits(selector / REQUEST_TYPES as u8);
    match usize::from(selector) % REQUEST_TYPES {
        0 => {
            if let Some(r) = decode::<pb::CreateConversationGroupRequest>(body) {
                let name = convert::new_group_name("group_name", r.group_name.clone(), &limits);
                assert_eq!(name.is_ok(), is_group_name(&r.group_name, limits.max_group_name_bytes));
                check_list(&r.conversation_ids, &limits);
            }
        }
        1 => {
            decode::<pb::DeleteConversationGroupRequest>(body);
        }
        2 => {
            if let Some(r) = decode::<pb::RenameConversationGroupRequest>(body) {
                let name = convert::new_group_name("new_name", r.new_name.clone(), &limits);
                assert_eq!(name.is_ok(), is_group_name(&r.new_name, limits.max_group_name_bytes));
                if let Err(e) = name {
                    assert!(e.to_string().starts_with("new_name"), "{e}");
                }
            }
        }
        3 => {
            decode::<pb::GetConversationGroupListRequest>(body);
        }
        4 => {
            decode::<pb::ReorderConversationGroupsRequest>(body);
        }
        5 => {
            if let Some(r) = decode::<pb::AddConversationsToGroupRequest>(body) {
                check_list(&r.conversation_ids, &limits);
            }
        }
        6 => {
            if let Some(r) = decode::<pb::DeleteConversationsFromGroupRequest>(body) {
                check_list(&r.conversation_ids, &limits);
            }
        }
        7 => {
            if let Some(r) = decode::<pb::GetConversationListRequest>(body) {
                if let Some(filter) = check_filter(r.filter, &limits) {
                    let _ = convert::decode_page_token(&r.page_token, &filter);
                }
            }
        }
        8 => {
            if let Some(r) = decode::<pb::GetUnreadCountRequest>(body) {
                check_filter(r.filter, &limits);
            }
        }
        9 => {
            decode::<pb::WatchGroupEventsRequest>(body);
        }
        10 => {
            if let Some(r) = decode::<pb::UpsertConversationsRequest>(body) {
                let size = convert::check_list_size("conversations", r.conversations.len(), &limits);
                assert_eq!(size.is_ok(), (1..=limits.max_ids_per_request).contains(&r.conversations.len()));
                for (index, update) in r.conversations.into_iter().enumerate() {
                    check_patch(index, update, &limits);
                }
            }
        }
        11 => {
            if let Some(r) = decode::<pb::DeleteConversationsRequest>(body) {
                check_list(&r.conversation_ids, &limits);
            }
        }
        _ => {
            if let Some(r) = decode::<pb::UpdateConversationGroupRequest>(body) {
                check_look_update(r, &limits);
            }
        }
    }
}

/// UpdateConversationGroup's boundary check against the proto's rules: a
/// non-empty mask of known paths, then only the named values checked (icon
/// bytes and control characters, a palette colour, custom data bytes); the
/// error names the field at fault.
fn check_look_update(r: pb::UpdateConversationGroupRequest, limits: &Limits) {
    const FIELDS: [&str; 4] = ["icon", "color", "collapsed", "custom_data"];
    let paths = r.update_mask.clone().map(|m| m.paths).unwrap_or_default();
    let look = r.look.clone().unwrap_or_default();
    let named = |f: &str| paths.iter().any(|p| p == f || p == "*");
    let mask_ok = !paths.is_empty() && paths.iter().all(|p| p == "*" || FIELDS.contains(&p.as_str()));
    let icon_ok =
        !named("icon") || (look.icon.len() <= limits.max_group_icon_bytes && !look.icon.chars().any(char::is_control));
    let color_ok = !named("color") || (0..=7).contains(&look.color);
    let data_ok = !named("custom_data") || look.custom_data.len() <= limits.max_group_custom_data_bytes;
    match convert::look_update(r.update_mask, r.look, limits) {
        Ok(update) => {
            assert!(mask_ok && icon_ok && color_ok && data_ok, "accepted {paths:?} {look:?}");
            assert!(update.fields.iter().all(|f| named(f.path())), "{:?} not all named in {paths:?}", update.fields);
        }
        Err(e) => {
            let field = if !mask_ok {
                "update_mask"
            } else if !icon_ok {
                "look.icon"
            } else if !color_ok {
                "look.color"
            } else {
                assert!(!data_ok, "refused a valid update {paths:?} {look:?}: {e}");
                "look.custom_data"
            };
            assert!(e.to_string().starts_with(field), "{e} should name {field}");
        }
    }
}

/// Reads choices from fuzz bytes (zero once they run out), to build
/// well-formed requests whose values sit near every limit.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    /// Sometimes None, else a value.
    fn maybe<T>(&mut self, value: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.flag() {
            Some(value(self))
        } else {
            None
        }
    }
    /// A length around a limit: 0, limit - 1, limit, limit + 1, or small.
    fn len_near(&mut self, limit: usize) -> usize {
        match self.below(5) {
            0 => 0,
            1 => limit.saturating_sub(1),
            2 => limit,
            3 => limit + 1,
            _ => self.below(4),
        }
    }
    fn text_near(&mut self, limit: usize) -> String {
        let len = self.len_near(limit);
        let c = ['a', '\u{e9}', '\u{7}', ' '][self.below(4)];
        let mut out: String = std::iter::repeat_n(c, len).collect();
        while out.len() > len && !out.is_empty() {
            out.pop();
        }
        out
    }
    fn id(&mut self) -> String {
        const IDS: [&str; 10] = ["C2Ca", "c2c_a", "GROUPg", "group_g", "C2C", "x", "", "C2Ca b", "group_", "C2C~"];
        match self.below(12) {
            10 => format!("C2C{}", "p".repeat(self.len_near(128))),
            11 => String::from_utf8_lossy(&[self.byte(), self.byte(), self.byte()]).to_string(),
            i => IDS[i].to_string(),
        }
    }
    fn ids(&mut self, limit: usize) -> Vec<String> {
        let n = self.len_near(limit);
        (0..n).map(|_| self.id()).collect()
    }
    fn enum_value(&mut self) -> i32 {
        [0, 1, 2, 3, 4, 5, 6, 99, -1, i32::MAX][self.below(10)]
    }
}

/// Well-formed requests built from the bytes (rather than decoded from
/// them), so conversion is exercised at every limit: updates, filters and
/// id lists go through the wire encoding and the service's conversion.
pub fn target_conversion(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let limits = limits(selector);
    let mut c = Choices(rest);
    match selector >> 1 & 3 {
        0 => {
            let n = c.len_near(limits.max_ids_per_request);
            let updates: Vec<pb::ConversationUpdate> = (0..n)
                .map(|_| pb::ConversationUpdate {
                    conversation_id: c.id(),
                    show_name: c.maybe(|c| c.text_near(limits.max_text_field_bytes)),
                    face_url: c.maybe(|c| c.text_near(limits.max_text_field_bytes)),
                    unread_count: c.maybe(|c| u32::from(c.byte())),
                    is_pinned: c.maybe(Choices::flag),
                    order_key: c.maybe(|c| u64::from(c.byte()) << 56),
                    recv_opt: c.maybe(Choices::enum_value),
                    mark_list: c.maybe(|c| pb::MarkList {
                        values: (0..c.len_near(limits.max_marks)).map(|i| i as u64).collect(),
                    }),
                    add_marks: (0..c.len_near(2)).map(|_| u64::from(c.byte() & 3)).collect(),
                    remove_marks: (0..c.len_near(2)).map(|_| u64::from(c.byte() & 3)).collect(),
                    custom_data: c.maybe(|c| vec![0xab; c.len_near(limits.max_custom_data_bytes)]),
                    has_group_at_info: c.maybe(Choices::flag),
                    last_message: c.maybe(|c| pb::LastMessage {
                        sender: c.text_near(limits.max_text_field_bytes),
                        text: c.text_near(limits.max_text_field_bytes),
                        time: c.maybe(|c| prost_types::Timestamp {
                            seconds: i64::from(c.byte() as i8) << 40,
                            nanos: i32::from(c.byte() as i8) * 10_000_000,
                        }),
                    }),
                })
                .collect();
            let request = pb::UpsertConversationsRequest { conversations: updates };
            let mut bytes = vec![10 + (selector & 1) * REQUEST_TYPES as u8];
            bytes.extend(request.encode_to_vec());
            target_request(&bytes);
        }
        1 => {
            let filter = pb::ConversationFilter {
                r#type: c.maybe(Choices::enum_value),
                group_name: c.maybe(|c| c.text_near(4)),
                mark_type: c.maybe(|c| u64::from(c.byte() % 3)),
                has_unread_count: c.maybe(Choices::flag),
                has_group_at_info: c.maybe(Choices::flag),
                conversation_ids: c.ids(limits.max_ids_per_request),
                ..Default::default()
            };
            let request = pb::GetConversationListRequest {
                filter: Some(filter),
                page_size: 0,
                page_token: String::new(),
                min_revision: None,
            };
            let mut bytes = vec![7 + (selector & 1) * REQUEST_TYPES as u8];
            bytes.extend(request.encode_to_vec());
            target_request(&bytes);
        }
        2 => {
            let request = pb::CreateConversationGroupRequest {
                group_name: c.text_near(limits.max_group_name_bytes),
                conversation_ids: c.ids(limits.max_ids_per_request),
                expected_revision: None,
                ..Default::default()
            };
            let mut bytes = vec![(selector & 1) * REQUEST_TYPES as u8];
            bytes.extend(request.encode_to_vec());
            target_request(&bytes);
        }
        _ => {
            let request = pb::DeleteConversationsRequest { conversation_ids: c.ids(limits.max_ids_per_request) };
            let mut bytes = vec![11 + (selector & 1) * REQUEST_TYPES as u8];
            bytes.extend(request.encode_to_vec());
            target_request(&bytes);
        }
    }
}

/// The list-size rule and the per-item classification of an id list.
fn check_list(ids: &[String], limits: &Limits) {
    let size = convert::check_list_size("conversation_ids", ids.len(), limits);
    assert_eq!(size.is_ok(), (1..=limits.max_ids_per_request).contains(&ids.len()), "{} ids", ids.len());
    if let Err(e) = size {
        assert!(matches!(e, Error::InvalidConversationList { field: "conversation_ids", .. }), "{e:?}");
    } else {
        check_classification(ids);
    }
}

/// Filter conversion: accepted exactly when the type is C2C or GROUP (or
/// unset) and the ids are few enough and all valid; ids come out
/// normalised and de-duplicated, in request order.
fn check_filter(f: Option<pb::ConversationFilter>, limits: &Limits) -> Option<ConversationFilter> {
    let result = convert::filter(f.clone(), limits);
    let Some(f) = f else {
        assert_eq!(result.unwrap(), ConversationFilter::default());
        return None;
    };
    let type_ok = f.r#type.is_none_or(|t| t == 1 || t == 2);
    let count_ok = f.conversation_ids.len() <= limits.max_ids_per_request;
    let parsed: Vec<Option<String>> = f.conversation_ids.iter().map(|r| canonical(r)).collect();
    let ids_ok = parsed.iter().all(Option::is_some);
    // A group by id: not together with a name, and of the server's form.
    let one_group = !(f.group_name.is_some() && f.group_id.is_some());
    let id_ok = f.group_id.as_deref().is_none_or(|id| convgroups::domain::GroupId::parse(id).is_ok());
    match result {
        Ok(converted) => {
            assert!(type_ok && count_ok && ids_ok && one_group && id_ok, "accepted {f:?}");
            let mut want: Vec<String> = Vec::new();
            for id in parsed.into_iter().flatten() {
                if !want.contains(&id) {
                    want.push(id);
                }
            }
            let got: Vec<String> = converted.conversation_ids.iter().map(|i| i.as_str().to_string()).collect();
            assert_eq!(got, want);
            assert_eq!(converted.group_name, f.group_name);
            assert_eq!(converted.mark_type, f.mark_type);
            assert_eq!(converted.has_unread_count, f.has_unread_count);
            assert_eq!(converted.has_group_at_info, f.has_group_at_info);
            let kind = f.r#type.map(|t| if t == 1 { ConversationKind::C2c } else { ConversationKind::Group });
            assert_eq!(converted.kind, kind);
            Some(converted)
        }
        Err(e) => {
            assert!(!(type_ok && count_ok && ids_ok && one_group && id_ok), "refused a valid filter {f:?}: {e:?}");
            let field_ok = match &e {
                Error::InvalidArgument { field: "filter.type", .. } => !type_ok,
                Error::InvalidConversationList { field: "filter.conversation_ids", .. } => !count_ok,
                Error::InvalidArgument { field: "filter.conversation_ids", .. } => !ids_ok,
                Error::GroupNameAndId { name_field: "filter.group_name", id_field: "filter.group_id" } => !one_group,
                Error::InvalidGroupId { field: "filter.group_id", .. } => !id_ok,
                _ => false,
            };
            assert!(field_ok, "{e:?} for {f:?}");
            None
        }
    }
}

/// One ConversationUpdate: the item fails exactly when a field is out of
/// range, with a code the contract gives that case and a message naming
/// the field; otherwise the patch carries the fields unchanged.
fn check_patch(index: usize, u: pb::ConversationUpdate, limits: &Limits) {
    let long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > limits.max_text_field_bytes);
    let too_large = u.custom_data.as_ref().is_some_and(|d| d.len() > limits.max_custom_data_bytes);
    let bad_recv = u.recv_opt.is_some_and(|v| !(1..=5).contains(&v));
    let bad_marks = u.mark_list.as_ref().is_some_and(|m| m.values.len() > limits.max_marks)
        || (u.mark_list.is_some() && !(u.add_marks.is_empty() && u.remove_marks.is_empty()))
        || u.add_marks.len() > limits.max_marks
        || u.remove_marks.len() > limits.max_marks
        || u.add_marks.iter().any(|m| u.remove_marks.contains(m));
    let bad_text = long(&u.show_name)
        || long(&u.face_url)
        || u.last_message.as_ref().is_some_and(|m| {
            m.sender.len() > limits.max_text_field_bytes || m.text.len() > limits.max_text_field_bytes
        });
    match convert::patch(index, u.clone(), limits) {
        Ok(p) => {
            assert!(!(too_large || bad_recv || bad_marks || bad_text), "accepted {u:?}");
            assert_eq!(p.show_name, u.show_name);
            assert_eq!(p.face_url, u.face_url);
            assert_eq!(p.unread_count, u.unread_count);
            assert_eq!(p.is_pinned, u.is_pinned);
            assert_eq!(p.order_key, u.order_key);
            assert_eq!(p.custom_data, u.custom_data);
            assert_eq!(p.has_group_at_info, u.has_group_at_info);
            assert_eq!(p.mark_list, u.mark_list.map(|m| m.values));
            assert_eq!((p.add_marks, p.remove_marks), (u.add_marks, u.remove_marks));
            let recv = u.recv_opt.map(|v| match v {
                1 => RecvOpt::Receive,
                2 => RecvOpt::NotReceive,
                3 => RecvOpt::ReceiveNotNotify,
                4 => RecvOpt::ReceiveNotNotifyExceptAt,
                _ => RecvOpt::NotReceiveExceptAt,
            });
            assert_eq!(p.recv_opt, recv);
            assert_eq!(p.last_message.is_some(), u.last_message.is_some());
            if let (Some(got), Some(sent)) = (&p.last_message, &u.last_message) {
                assert_eq!((&got.sender, &got.text), (&sent.sender, &sent.text));
                assert_eq!(got.time_ms.is_some(), sent.time.is_some());
                if let Some(ms) = got.time_ms {
                    check_timestamp(ms);
                }
            }
        }
        Err((code, message)) => {
            let allowed = match code {
                ItemCode::CustomDataTooLarge => too_large,
                ItemCode::InvalidField => bad_recv || bad_marks || bad_text,
                _ => false,
            };
            assert!(allowed, "{code:?} ({message}) for {u:?}");
            assert!(message.starts_with(&format!("conversations[{index}].")), "{message}");
        }
    }
}

/// A stored time renders as a well-formed Timestamp that means the same
/// instant.
fn check_timestamp(ms: i64) {
    let ts = convert::timestamp(ms);
    assert!((0..1_000_000_000).contains(&ts.nanos), "{ts:?}");
    assert_eq!(ts.nanos % 1_000_000, 0, "{ts:?}");
    assert_eq!(i128::from(ts.seconds) * 1000 + i128::from(ts.nanos / 1_000_000), i128::from(ms), "{ts:?}");
}

// ---------------------------------------------------------------------------
// Target: bearer tokens, through the real authenticator
// ---------------------------------------------------------------------------

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0123456789";

fn authenticator() -> Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| Authenticator::new(Secret::from_bytes(SECRET))).clone()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(claims: &str) -> String {
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{}", b64(claims.as_bytes()));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

/// The honest tokens mutations start from: (token, subject, admin).
fn honest_tokens() -> Vec<(String, String, bool)> {
    // Fixed (2100-01-01), so the same tokens come out on every call.
    let exp = 4_102_444_800u64;
    vec![
        (sign(&format!(r#"{{"sub":"alice","exp":{exp}}}"#)), "alice".into(), false),
        (sign(&format!(r#"{{"sub":"ops","exp":{exp},"adm":true}}"#)), "ops".into(), true),
    ]
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs the authenticator on request metadata with these headers (the
/// service calls it first thing in every call). None when a value cannot be
/// sent as a header at all.
fn authenticate(authorization: Option<&[u8]>, user: Option<&[u8]>) -> Option<Result<Caller, tonic::Status>> {
    let mut metadata = MetadataMap::new();
    if let Some(value) = authorization {
        metadata.insert("authorization", MetadataValue::try_from(value).ok()?);
    }
    if let Some(value) = user {
        metadata.insert(USER_HEADER, MetadataValue::try_from(value).ok()?);
    }
    Some(authenticator().authenticate(&metadata).map_err(tonic::Status::from))
}

/// Checks the acting user given a verified subject: the user header is
/// honoured for admins, refused for others naming someone else.
fn check_acting(result: Result<Caller, tonic::Status>, subject: &str, admin: bool, user: Option<&[u8]>) {
    let named = user.map(|u| std::str::from_utf8(u).ok().filter(|s| is_user_id(s)));
    match (result, named) {
        (Ok(caller), None) => {
            assert_eq!((caller.subject.as_str(), caller.admin, caller.acting_for.as_str()), (subject, admin, subject));
        }
        (Ok(caller), Some(Some(name))) => {
            assert!(admin || name == subject, "a user token acted for {name}");
            assert_eq!(caller.subject.as_str(), subject);
            assert_eq!(caller.acting_for.as_str(), name);
        }
        (Ok(caller), Some(None)) => panic!("an invalid user header was accepted: {caller:?}"),
        (Err(status), Some(None)) => assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}"),
        (Err(status), Some(Some(name))) => {
            assert!(!admin && name != subject, "refused {name} for {subject} (admin {admin}): {status:?}");
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        }
        (Err(status), None) => panic!("a valid token was refused: {status:?}"),
    }
}

/// Whatever authenticated (or got past the token check to a header
/// verdict) is one of the honest tokens: its signed part untouched and its
/// signature the same bytes (base64 trailing bits aside). Anything else is
/// UNAUTHENTICATED.
fn check_only_honest_tokens_pass(header: &[u8], result: Result<Caller, tonic::Status>, user: Option<&[u8]>) {
    let verified = result.is_ok() || matches!(&result, Err(s) if s.code() != tonic::Code::Unauthenticated);
    if !verified {
        return;
    }
    let text = String::from_utf8_lossy(header).to_string();
    let rest = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")).expect("a scheme");
    let parts: Vec<&str> = rest.trim().split('.').collect();
    assert_eq!(parts.len(), 3, "{text:?}");
    let honest = honest_tokens();
    let (token, subject, admin) = honest
        .iter()
        .find(|(token, _, _)| token.split('.').take(2).eq(parts[..2].iter().copied()))
        .unwrap_or_else(|| panic!("an altered or forged token got through: {text:?}"));
    let signature = token.split('.').nth(2).unwrap();
    assert_eq!(signature_bytes(parts[2]), signature_bytes(signature), "{text:?}");
    check_acting(result, subject, *admin, user);
}

/// Lenient base64url, to compare signatures by their bytes.
fn signature_bytes(s: &str) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(s).ok()
}

/// Only a correctly signed HS256 token with a valid `sub` and a future
/// `exp` authenticates, as its own subject; whatever else reaches the
/// authenticator is UNAUTHENTICATED (or, for the user header, refused as the
/// contract says), and nothing panics.
pub fn target_token(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else { return };
    let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let (body, user) = (&rest[..split], rest.get(split + 1..));
    let user = if selector & 0x80 != 0 { user } else { None };
    match selector & 3 {
        // Raw bytes as the authorization header.
        0 => {
            if let Some(result) = authenticate(Some(body), user) {
                check_only_honest_tokens_pass(body, result, user);
            }
        }
        // An honest token with some bytes changed (prefix included).
        1 => {
            let honest = honest_tokens();
            let (token, _, _) = &honest[usize::from(selector >> 2 & 1)];
            let mut header = format!("Bearer {token}").into_bytes();
            for pair in body.chunks(2).take(3) {
                match pair {
                    [at, value] if *value & 1 == 0 => {
                        let i = usize::from(*at) % header.len();
                        header[i] = *value >> 1;
                    }
                    [at, value] => {
                        let i = usize::from(*at) % (header.len() + 1);
                        header.insert(i, *value >> 1);
                    }
                    _ => {
                        header.pop();
                    }
                }
            }
            if let Some(result) = authenticate(Some(&header), user) {
                check_only_honest_tokens_pass(&header, result, user);
            }
        }
        // Correctly signed tokens with fuzzed claims.
        _ => {
            let text = String::from_utf8_lossy(body);
            let mut fields = text.splitn(3, '\u{1}');
            let sub = fields.next().unwrap_or_default().to_string();
            let exp_kind = selector >> 2 & 7;
            let exp = match exp_kind {
                0 => None,
                1 => Some((now() + 3600).to_string()),
                2 => Some((now() - 3600).to_string()),
                3 => Some("\"soon\"".to_string()),
                4 => Some("-1".to_string()),
                5 => Some(format!("{}.5", now() + 3600)),
                6 => Some(u64::MAX.to_string()),
                _ => Some(fields.next().unwrap_or_default().to_string()),
            };
            let adm = match selector >> 5 & 3 {
                0 => None,
                1 => Some("true"),
                2 => Some("false"),
                _ => Some("\"yes\""),
            };
            let mut claims = format!("{{\"sub\":{}", json_string(&sub));
            if let Some(exp) = &exp {
                claims.push_str(&format!(",\"exp\":{exp}"));
            }
            if let Some(adm) = adm {
                claims.push_str(&format!(",\"adm\":{adm}"));
            }
            claims.push('}');
            let token = sign(&claims);
            let Some(result) = authenticate(Some(format!("Bearer {token}").as_bytes()), user) else { return };
            // A JSON integer (no sign, no leading zero) in the future.
            let future_integer = |e: &str| {
                !e.is_empty()
                    && e.bytes().all(|b| b.is_ascii_digit())
                    && (e == "0" || !e.starts_with('0'))
                    && e.parse::<u64>().is_ok_and(|e| e > now() + 1)
            };
            let exp_ok = matches!(exp_kind, 1 | 6) || (exp_kind == 7 && exp.as_deref().is_some_and(future_integer));
            let adm_ok = !matches!(adm, Some("\"yes\""));
            let admin = adm == Some("true");
            if is_user_id(&sub) && exp_ok && adm_ok {
                check_acting(result, &sub, admin, user);
            } else if exp_kind == 7 && !exp_ok {
                // A fuzzed exp: whatever it was, a refusal is right unless
                // it parsed as a future time in a form we did not predict.
                if let Ok(caller) = result {
                    assert_eq!(caller.subject.as_str(), sub, "{claims}");
                }
            } else {
                let status = result.expect_err(&format!("accepted claims {claims}"));
                assert_eq!(status.code(), tonic::Code::Unauthenticated, "{claims}: {status:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

const INTERESTING: [u8; 16] = [0, 1, 2, 3, 5, 6, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x08, b'C', b'.', b'_', 0xc3];

fn mutate(rng: &mut XorShift, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.byte());
            }
            3 if !input.is_empty() => {
                let i = rng.below(input.len());
                let n = rng.below(input.len() - i) + 1;
                input.drain(i..i + n.min(8));
            }
            4 if !input.is_empty() => {
                let cut = rng.below(input.len());
                input.truncate(cut);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let i = rng.below(input.len() + 1);
                let j = rng.below(other.len() + 1);
                input.splice(i.., other[j..].iter().copied());
            }
            6 if !input.is_empty() => {
                let i = rng.below(input.len());
                let n = rng.below(16).min(input.len() - i);
                let chunk: Vec<u8> = input[i..i + n].to_vec();
                input.splice(i..i, chunk);
            }
            _ => {
                let i = rng.below(input.len() + 1);
                input.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
        }
    }
    if input.len() > 4096 {
        input.truncate(4096);
    }
}

fn seconds() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(4.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        (t.as_nanos() as u64) | 1
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `target` on the corpus, then on random and mutated inputs until
/// the time is up. Panics with a reproducible report on the first failure.
fn fuzz(name: &str, target: fn(&[u8]), mut corpus: Vec<Vec<u8>>) {
    let seed = seed();
    let mut rng = XorShift(seed);
    let deadline = Instant::now() + seconds();
    let run = |input: &[u8], iteration: u64| {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "fuzz target {name} failed at iteration {iteration} (FUZZ_SEED={seed}): {message}\ninput (hex): {}",
                hex(input)
            );
        }
    };
    for (i, input) in corpus.iter().enumerate() {
        run(input, i as u64);
    }
    let mut iterations = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            iterations += 1;
            let input = if rng.below(5) == 0 {
                (0..rng.below(256)).map(|_| rng.byte()).collect()
            } else {
                let mut input = corpus[rng.below(corpus.len())].clone();
                mutate(&mut rng, &mut input, &corpus);
                input
            };
            run(&input, iterations);
            if rng.below(64) == 0 && corpus.len() < 4096 {
                corpus.push(input);
            }
        }
    }
    eprintln!("fuzz {name}: {iterations} inputs in {:?} (FUZZ_SEED={seed})", seconds());
    assert!(iterations > 0);
}

fn with_selector(selector: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------
// Corpora of valid inputs
// ---------------------------------------------------------------------------

fn request_corpus() -> Vec<Vec<u8>> {
    let ids: Vec<String> = ["C2Calice", "c2c_bob", "GROUPteam", "group_x", "bad", "C2Calice"].map(String::from).into();
    let update = pb::ConversationUpdate {
        conversation_id: "C2Calice".into(),
        show_name: Some("Alice".into()),
        face_url: Some("https://x".into()),
        unread_count: Some(3),
        is_pinned: Some(true),
        order_key: Some(42),
        recv_opt: Some(2),
        mark_list: Some(pb::MarkList { values: vec![1, 2] }),
        add_marks: vec![],
        remove_marks: vec![],
        custom_data: Some(vec![1, 2, 3]),
        has_group_at_info: Some(true),
        last_message: Some(pb::LastMessage {
            sender: "bob".into(),
            text: "hi".into(),
            time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5_000_000 }),
        }),
    };
    let filter = pb::ConversationFilter {
        r#type: Some(1),
        group_name: Some("Work".into()),
        mark_type: Some(0),
        has_unread_count: Some(true),
        has_group_at_info: Some(false),
        conversation_ids: vec!["C2Ca".into(), "c2c_a".into()],
        ..Default::default()
    };
    let bodies: Vec<(usize, Vec<u8>)> = vec![
        (
            0,
            pb::CreateConversationGroupRequest {
                group_name: "Work".into(),
                conversation_ids: ids.clone(),
                expected_revision: Some(3),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            1,
            pb::DeleteConversationGroupRequest {
                group_name: "Work".into(),
                expected_revision: None,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            2,
            pb::RenameConversationGroupRequest {
                old_name: "Work".into(),
                new_name: "\u{e9}t\u{e9}".into(),
                expected_revision: Some(0),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (3, pb::GetConversationGroupListRequest::default().encode_to_vec()),
        (
            4,
            pb::ReorderConversationGroupsRequest {
                group_names: vec!["a".into(), "b".into()],
                expected_revision: None,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            5,
            pb::AddConversationsToGroupRequest {
                group_name: "Work".into(),
                conversation_ids: ids.clone(),
                expected_revision: None,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            6,
            pb::DeleteConversationsFromGroupRequest {
                group_name: "Work".into(),
                conversation_ids: ids.clone(),
                expected_revision: Some(9),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            7,
            pb::GetConversationListRequest {
                filter: Some(filter.clone()),
                page_size: 10,
                page_token: convert::encode_page_token(&ConversationFilter::default(), &position_from(b"\x01abc")),
                min_revision: None,
            }
            .encode_to_vec(),
        ),
        (8, pb::GetUnreadCountRequest { filter: Some(filter), min_revision: None }.encode_to_vec()),
        (
            8,
            pb::GetUnreadCountRequest {
                filter: Some(pb::ConversationFilter {
                    r#type: Some(2),
                    group_name: Some(String::new()),
                    conversation_ids: vec!["group_g".into(), "x".into()],
                    ..Default::default()
                }),
                min_revision: None,
            }
            .encode_to_vec(),
        ),
        (
            9,
            pb::WatchGroupEventsRequest {
                start_revision: 5,
                send_snapshot: true,
                event_types: vec![1, 2, 8],
                group_names: vec!["Work".into()],
                all_users: false,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (10, pb::UpsertConversationsRequest { conversations: vec![update.clone(), update] }.encode_to_vec()),
        (11, pb::DeleteConversationsRequest { conversation_ids: ids }.encode_to_vec()),
        (
            12,
            pb::UpdateConversationGroupRequest {
                group_name: "Work".into(),
                look: Some(pb::GroupLook {
                    icon: "\u{1f69a}".into(),
                    color: 2,
                    collapsed: true,
                    custom_data: vec![1, 2],
                }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["icon".into(), "color".into()] }),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    let mut corpus = Vec::new();
    for (kind, body) in bodies {
        for limits in 0..2 {
            corpus.push(with_selector((kind + limits * REQUEST_TYPES) as u8, &body));
        }
    }
    corpus
}

fn token_corpus() -> Vec<Vec<u8>> {
    let mut corpus = Vec::new();
    for (token, _, _) in honest_tokens() {
        corpus.push(with_selector(0, format!("Bearer {token}").as_bytes()));
    }
    for selector in 0..=255u8 {
        if selector & 3 != 0 {
            corpus.push(with_selector(selector, b"alice\x00alice"));
        }
    }
    corpus.push(with_selector(0x83, b"al ice\x00ops"));
    corpus
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn fuzz_ids_and_names() {
    let corpus = ["C2Calice", "c2c_bob", "GROUPteam\nc2c_team\nC2C", "group_", "Work", "\u{e9}\u{85}"]
        .iter()
        .flat_map(|s| (0..4u8).map(move |sel| with_selector(sel * 37, s.as_bytes())))
        .collect();
    fuzz("ids", target_ids, corpus);
}

#[test]
fn fuzz_page_tokens() {
    let mut corpus = Vec::new();
    for selector in [0u8, 1, 0x40, 0x45, 0x80, 0x83, 0xc0, 0xc4] {
        corpus.push(with_selector(selector, b"\x01\0\0\0\0\0\0\0\x2aalice"));
        corpus.push(with_selector(selector, b"AQ"));
    }
    let token = convert::encode_page_token(&filters()[0], &position_from(b"\x00\x00\x00\x00\x00\x00\x00\x00\x07bob"));
    corpus.push(with_selector(0, token.as_bytes()));
    fuzz("page_token", target_page_token, corpus);
}

#[test]
fn fuzz_requests() {
    fuzz("request", target_request, request_corpus());
}

#[test]
fn fuzz_conversion() {
    let corpus = (0..=255u8).map(|selector| vec![selector, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).collect();
    fuzz("conversion", target_conversion, corpus);
}

#[test]
fn fuzz_tokens() {
    fuzz("token", target_token, token_corpus());
}

/// Every time in milliseconds renders as a well-formed Timestamp.
#[test]
fn fuzz_timestamps() {
    let mut rng = XorShift(seed());
    for ms in [i64::MIN, i64::MIN + 1, -1001, -1000, -999, -1, 0, 1, 999, 1000, i64::MAX - 1, i64::MAX] {
        check_timestamp(ms);
    }
    let deadline = Instant::now() + seconds().min(Duration::from_secs(1));
    while Instant::now() < deadline {
        check_timestamp(rng.next() as i64);
    }
}

/// The harness itself: each oracle agrees with hand-picked cases, so a
/// silent oracle cannot hide a broken target.
#[test]
fn oracles_agree_with_known_cases() {
    assert_eq!(canonical("c2c_bob").as_deref(), Some("C2Cbob"));
    assert_eq!(canonical("GROUP_x").as_deref(), Some("GROUP_x"));
    assert_eq!(canonical("C2C"), None);
    assert_eq!(canonical("Group_x"), None);
    assert!(is_group_name("\u{e9}", 2) && !is_group_name("\u{e9}", 1) && !is_group_name("a\u{85}", 9));
    let (token, subject, admin) = honest_tokens().remove(1);
    let caller = authenticate(Some(format!("Bearer {token}").as_bytes()), Some(b"bob")).unwrap().unwrap();
    assert_eq!((caller.subject.as_str(), caller.admin, caller.acting_for.as_str()), (subject.as_str(), admin, "bob"));
    let refused = authenticate(Some(format!("Bearer {}", sign(r#"{"sub":"a","exp":1}"#)).as_bytes()), None);
    assert_eq!(refused.unwrap().unwrap_err().code(), tonic::Code::Unauthenticated);
    // Each corpus entry runs without failing.
    for input in request_corpus() {
        target_request(&input);
    }
    for input in token_corpus() {
        target_token(&input);
    }
}
