//! What API Gateway's HTTP API (payload 2.0) says about a request.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// API Gateway's request id (what its access log shows), else Lambda's; empty when
    /// neither is known (a request built by hand in a unit test).
    pub request_id: String,
    /// `METHOD /path/{param}` as the template declares the route.
    pub route_key: String,
    /// The client's address as API Gateway saw it (never a header the client can set).
    pub source_ip: Option<String>,
    /// The IAM principal that signed the request (its ARN), on the IAM-authorized routes.
    pub caller: Option<String>,
}

impl RequestMeta {
    pub fn of(req: &Request) -> Self {
        let mut meta = RequestMeta::default();
        if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
            meta.request_id = ctx.request_id.clone().unwrap_or_default();
            meta.route_key = ctx.route_key.clone().unwrap_or_default();
            meta.source_ip = ctx.http.source_ip.clone();
            meta.caller = ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref()).and_then(|i| i.user_arn.clone());
        }
        if meta.request_id.is_empty()
            && let Some(c) = req.lambda_context_ref()
        {
            meta.request_id = c.request_id.clone();
        }
        meta
    }

    /// The path part of the route key: `/devices/{device_sn}/readings`.
    pub fn route_path(&self) -> &str {
        self.route_key.split_once(' ').map_or(self.route_key.as_str(), |(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_comes_from_the_api_gateway_context() {
        let event = r#"{"version":"2.0","routeKey":"GET /devices/{device_sn}/readings","rawPath":"/devices/A/readings",
            "rawQueryString":"","headers":{},"requestContext":{"accountId":"1","apiId":"a","domainName":"d",
            "domainPrefix":"d","http":{"method":"GET","path":"/devices/A/readings","protocol":"HTTP/1.1",
            "sourceIp":"203.0.113.9","userAgent":"t"},"requestId":"req-1","routeKey":"GET /devices/{device_sn}/readings",
            "stage":"$default","timeEpoch":1},"isBase64Encoded":false}"#;
        let req = lambda_http::request::from_str(event).unwrap();
        let m = RequestMeta::of(&req);
        assert_eq!(m.request_id, "req-1");
        assert_eq!(m.route_path(), "/devices/{device_sn}/readings");
        assert_eq!(m.source_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(RequestMeta::of(&Request::default()), RequestMeta::default());
    }
}
