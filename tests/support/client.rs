//! The one client interceptor of the tests: [`Headers`] adds fixed metadata
//! (a bearer token, the acting-user header, or whatever a test wants to
//! send) to every request; the client types built on it.

use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::conversation_service_client::ConversationServiceClient;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Adds fixed metadata to every request of a client.
#[derive(Clone, Debug, Default)]
pub struct Headers(Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)>);

impl Headers {
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        MetadataKey::from_bytes(k.as_bytes()).expect("valid header name"),
                        MetadataValue::try_from(*v).expect("ASCII header value"),
                    )
                })
                .collect(),
        )
    }

    /// `authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Self {
        Self::new(&[("authorization", &format!("Bearer {token}"))])
    }
}

impl tonic::service::Interceptor for Headers {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (key, value) in &self.0 {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

pub type GroupClient = ConversationGroupServiceClient<InterceptedService<Channel, Headers>>;
pub type ConvClient = ConversationServiceClient<InterceptedService<Channel, Headers>>;

/// A group-service client on `channel` sending `authorization: Bearer <token>`.
pub fn group_client(channel: Channel, token: &str) -> GroupClient {
    ConversationGroupServiceClient::with_interceptor(channel, Headers::bearer(token))
}

/// A registry client on `channel` sending `authorization: Bearer <token>`.
pub fn conv_client(channel: Channel, token: &str) -> ConvClient {
    ConversationServiceClient::with_interceptor(channel, Headers::bearer(token))
}

/// A group-service client on `channel` sending `authorization: <bearer>`.
pub fn client_on(channel: Channel, bearer: &str) -> GroupClient {
    ConversationGroupServiceClient::with_interceptor(channel, Headers::new(&[("authorization", bearer)]))
}
