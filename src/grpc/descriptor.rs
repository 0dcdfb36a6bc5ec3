//! The API's methods and their auth classes, read from the embedded descriptor set.
//!
//! `prost_types` drops extension options when decoding, so this module decodes just the path
//! to `MethodOptions.(jhf.warp.v1.auth_class)` with a few purpose-built prost messages.
//!
//! The descriptor is compiled in, so it is decoded once per process and the table lives for
//! the whole process: the auth layer hands `&'static` method names to handlers (tonic's
//! `GrpcMethod` extension) without allocating per request.

use std::sync::OnceLock;

use prost::Message;

use crate::domain::access::AuthClass;
use crate::pb;

/// Field number of the `auth_class` extension in `options.proto`.
const AUTH_CLASS_FIELD: u32 = 51801;

#[derive(Clone, PartialEq, Message)]
struct FileSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDesc>,
}

#[derive(Clone, PartialEq, Message)]
struct FileDesc {
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceDesc>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceDesc {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodDesc>,
}

#[derive(Clone, PartialEq, Message)]
struct MethodDesc {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, optional, tag = "4")]
    options: Option<MethodOpts>,
    #[prost(bool, optional, tag = "6")]
    server_streaming: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct MethodOpts {
    #[prost(int32, optional, tag = "51801")]
    auth_class: Option<i32>,
}

/// One RPC of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiMethod {
    pub service: String,
    pub name: String,
    /// `/package.Service/Method`.
    pub path: String,
    /// `None` when the method declares no class (a defect the server refuses at start-up).
    pub auth_class: Option<AuthClass>,
    pub server_streaming: bool,
}

/// Why the descriptor set is unusable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DescriptorError {
    #[error("embedded descriptor set does not decode: {0}")]
    Decode(String),
    #[error("method {0} declares no auth_class (option field {AUTH_CLASS_FIELD})")]
    MissingAuthClass(String),
}

/// Returns every method of the `jhf.warp.v1` services, in descriptor order.
pub fn api_methods() -> Result<&'static [ApiMethod], DescriptorError> {
    static METHODS: OnceLock<Result<Vec<ApiMethod>, DescriptorError>> = OnceLock::new();
    METHODS.get_or_init(decode_methods).as_deref().map_err(Clone::clone)
}

fn decode_methods() -> Result<Vec<ApiMethod>, DescriptorError> {
    let set = FileSet::decode(pb::FILE_DESCRIPTOR_SET).map_err(|e| DescriptorError::Decode(e.to_string()))?;
    let mut methods = Vec::new();
    for file in set.file.iter().filter(|f| f.package.as_deref() == Some(pb::PROTO_PACKAGE)) {
        for service in &file.service {
            let service_name = format!("{}.{}", pb::PROTO_PACKAGE, service.name.as_deref().unwrap_or(""));
            for method in &service.method {
                let name = method.name.clone().unwrap_or_default();
                let class = method.options.as_ref().and_then(|o| o.auth_class).and_then(auth_class_of);
                methods.push(ApiMethod {
                    path: format!("/{service_name}/{name}"),
                    service: service_name.clone(),
                    name,
                    auth_class: class,
                    server_streaming: method.server_streaming.unwrap_or(false),
                });
            }
        }
    }
    Ok(methods)
}

/// Returns the methods, refusing any without an auth class.
pub fn classified_methods() -> Result<&'static [ApiMethod], DescriptorError> {
    let methods = api_methods()?;
    if let Some(unclassified) = methods.iter().find(|m| m.auth_class.is_none()) {
        return Err(DescriptorError::MissingAuthClass(unclassified.path.clone()));
    }
    Ok(methods)
}

fn auth_class_of(value: i32) -> Option<AuthClass> {
    match pb::v1::AuthClass::try_from(value).ok()? {
        pb::v1::AuthClass::Unspecified => None,
        pb::v1::AuthClass::Open => Some(AuthClass::Open),
        pb::v1::AuthClass::Read => Some(AuthClass::Read),
        pb::v1::AuthClass::Operate => Some(AuthClass::Operate),
        pb::v1::AuthClass::ControlAgent => Some(AuthClass::ControlAgent),
    }
}

/// Converts the domain class to the proto enum.
pub fn auth_class_to_pb(class: AuthClass) -> pb::v1::AuthClass {
    match class {
        AuthClass::Open => pb::v1::AuthClass::Open,
        AuthClass::Read => pb::v1::AuthClass::Read,
        AuthClass::Operate => pb::v1::AuthClass::Operate,
        AuthClass::ControlAgent => pb::v1::AuthClass::ControlAgent,
    }
}
