//! Responses that go out as bytes encoded once and shared.
//!
//! A batch delivered to many watchers, or the same group list answered
//! again and again, is the same protobuf message each time: encoding it per
//! watcher or per call is work (and memory) for nothing. [`Wire`] is a
//! response that is either a message or that message's encoding, already
//! made; the server's generated service (see `build.rs` and
//! [`crate::pb::service`]) takes it where the proto says
//! `WatchGroupEventsResponse`, `GetConversationGroupListResponse` or
//! `GetConversationListResponse`, and our
//! prost codec writes the shared bytes as they are. On the wire nothing
//! changes: the bytes are exactly the proto message's encoding (prost's own
//! `encode_to_vec`), so every client decodes them as before.

use std::fmt;
use std::marker::PhantomData;

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::pb;

/// A `M`, as a message or as its encoding made once and shared (a
/// [`Bytes`] clone is a reference count, not a copy).
pub enum Wire<M> {
    Message(M),
    Encoded(Bytes, PhantomData<fn() -> M>),
}

/// One message of a WatchGroupEvents stream.
pub type WatchFrame = Wire<pb::WatchGroupEventsResponse>;
/// The answer of GetConversationGroupList.
pub type GroupListReply = Wire<pb::GetConversationGroupListResponse>;
/// The answer of GetConversationList.
pub type ConversationPageReply = Wire<pb::GetConversationListResponse>;

impl<M: Message> Wire<M> {
    /// Encodes `message` once; the result may be sent any number of times.
    pub fn encode_once(message: &M) -> Bytes {
        Bytes::from(message.encode_to_vec())
    }

    /// Bytes made by [`encode_once`](Self::encode_once) (or any encoding of an `M`).
    pub fn encoded(bytes: Bytes) -> Self {
        Wire::Encoded(bytes, PhantomData)
    }
}

impl<M: Message + Default> Wire<M> {
    /// The message itself (decoding shared bytes): for tests and tools.
    pub fn into_message(self) -> Result<M, DecodeError> {
        match self {
            Wire::Message(message) => Ok(message),
            Wire::Encoded(bytes, _) => M::decode(bytes),
        }
    }
}

impl<M: Default> Default for Wire<M> {
    fn default() -> Self {
        Wire::Message(M::default())
    }
}

impl<M: fmt::Debug> fmt::Debug for Wire<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wire::Message(message) => message.fmt(f),
            Wire::Encoded(bytes, _) => write!(f, "Encoded({} bytes)", bytes.len()),
        }
    }
}

impl<M> From<M> for Wire<M> {
    fn from(message: M) -> Self {
        Wire::Message(message)
    }
}

/// Encodes as `M` does; shared bytes are written as they are. Decoding (the
/// server never decodes a response; a test might) turns shared bytes back
/// into the message first, so it merges as `M` would.
impl<M: Message + Default> Message for Wire<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            Wire::Message(message) => message.encode_raw(buf),
            // A message's encoding is the concatenation of its fields, which
            // is what `encode_raw` writes.
            Wire::Encoded(bytes, _) => buf.put_slice(bytes),
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if let Wire::Encoded(bytes, _) = self {
            *self = Wire::Message(M::decode(bytes.clone())?);
        }
        match self {
            Wire::Message(message) => message.merge_field(tag, wire_type, buf, ctx),
            Wire::Encoded(..) => unreachable!("decoded just above"),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Wire::Message(message) => message.encoded_len(),
            Wire::Encoded(bytes, _) => bytes.len(),
        }
    }

    fn clear(&mut self) {
        *self = Wire::Message(M::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::watch_group_events_response::Kind;

    fn response() -> pb::WatchGroupEventsResponse {
        let event = pb::GroupEvent {
            kind: Some(pb::group_event::Kind::GroupDeleted(pb::GroupDeleted {
                group_name: "R&D".into(),
                group_id: "g0".into(),
            })),
            ..Default::default()
        };
        pb::WatchGroupEventsResponse { kind: Some(Kind::Events(pb::EventBatch { revision: 7, events: vec![event] })) }
    }

    #[test]
    fn shared_bytes_go_out_exactly_as_the_message_would() {
        let message = response();
        let shared = WatchFrame::encoded(WatchFrame::encode_once(&message));
        assert_eq!(shared.encode_to_vec(), message.encode_to_vec());
        assert_eq!(shared.encoded_len(), message.encoded_len());
        // A length-delimited encoding too (what a nested use would write).
        assert_eq!(shared.encode_length_delimited_to_vec(), message.encode_length_delimited_to_vec());
        assert_eq!(pb::WatchGroupEventsResponse::decode(&shared.encode_to_vec()[..]).unwrap(), message);
    }

    #[test]
    fn decoding_gives_the_message_whatever_the_form() {
        let message = response();
        let bytes = message.encode_to_vec();
        assert_eq!(WatchFrame::decode(&bytes[..]).unwrap().into_message().unwrap(), message);
        let shared = WatchFrame::encoded(Bytes::from(bytes.clone()));
        assert_eq!(shared.into_message().unwrap(), message);
        // Merging into shared bytes merges into the message they hold (as
        // decoding the two encodings one after the other does).
        let mut merged = WatchFrame::encoded(Bytes::from(bytes.clone()));
        merged.merge(&bytes[..]).unwrap();
        let twice = pb::WatchGroupEventsResponse::decode(&[bytes.clone(), bytes].concat()[..]).unwrap();
        assert_eq!(merged.into_message().unwrap(), twice);
    }
}
