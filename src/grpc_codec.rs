//! The protobuf codec of our services: prost, except that a request that
//! does not decode gets INVALID_ARGUMENT with an ErrorInfo (reason
//! MALFORMED_REQUEST) like every other error of ours, instead of tonic-prost's
//! bare INTERNAL — the sender is at fault, and the message names the field.
//! build.rs points the generated code here (`codec_path`).
//!
//! The services the server runs ([`crate::pb::service`]) use [`ServedCodec`]:
//! the same, with a smaller first encode buffer per response stream.

use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::error::Error;

/// prost with our decode errors. `FIRST_BUFFER` is the first encode buffer
/// of each response stream (0: tonic's default); the generated code names
/// it through [`Codec`] (clients) and [`ServedCodec`] (the services served).
#[derive(Debug, Clone)]
pub struct SizedCodec<T, U, const FIRST_BUFFER: usize>(ProstCodec<T, U>);

/// prost with our decode errors, tonic's buffers.
pub type Codec<T, U> = SizedCodec<T, U, 0>;

/// [`Codec`] with a [`FIRST_ENCODE_BUFFER`] per response stream.
pub type ServedCodec<T, U> = SizedCodec<T, U, FIRST_ENCODE_BUFFER>;

impl<T, U, const FIRST_BUFFER: usize> Default for SizedCodec<T, U, FIRST_BUFFER> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U, const FIRST_BUFFER: usize> tonic::codec::Codec for SizedCodec<T, U, FIRST_BUFFER>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MalformedIsInvalid<U>;

    fn encoder(&mut self) -> Self::Encoder {
        match FIRST_BUFFER {
            0 => self.0.encoder(),
            first => ProstEncoder::new(BufferSettings::new(first, YIELD_THRESHOLD)),
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        MalformedIsInvalid(self.0.decoder())
    }
}

/// Wraps prost's decoder, relabelling its errors.
pub struct MalformedIsInvalid<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for MalformedIsInvalid<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| Error::MalformedRequest { message: status.message().to_string() }.into())
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The first encode buffer of each response stream of [`ServedCodec`].
/// tonic's default is 8 KiB, allocated when a stream starts and kept while
/// it lives; our messages are mostly far smaller (a watch batch or bookmark:
/// tens to hundreds of bytes; a group list of 20 groups: about 1 KiB), and
/// a server with 10,000 open watch streams would hold 80 MB of buffers for
/// them. A larger message grows the buffer as it is written.
pub const FIRST_ENCODE_BUFFER: usize = 1024;
/// tonic's default: encoded messages are handed to HTTP/2 at the latest
/// once this much is buffered.
const YIELD_THRESHOLD: usize = 32 * 1024;

#[cfg(test)]
mod tests {
    use tonic::codec::{Codec as _, Encoder as _};

    use super::*;

    /// Served response streams start with the small buffer; clients keep
    /// tonic's default (BufferSettings shows its sizes only through Debug).
    #[test]
    fn served_streams_start_with_the_small_buffer() {
        let settings = |s: BufferSettings| format!("{s:?}");
        let served = ServedCodec::<prost_types::Timestamp, prost_types::Timestamp>::default().encoder();
        assert_eq!(
            settings(served.buffer_settings()),
            settings(BufferSettings::new(FIRST_ENCODE_BUFFER, YIELD_THRESHOLD))
        );
        let plain = Codec::<prost_types::Timestamp, prost_types::Timestamp>::default().encoder();
        assert_eq!(settings(plain.buffer_settings()), settings(BufferSettings::default()));
        assert_ne!(settings(BufferSettings::default()), settings(served.buffer_settings()));
    }
}
