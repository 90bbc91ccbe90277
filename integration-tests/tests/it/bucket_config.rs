//! Bucket CORS (configuration, preflight, headers on actual responses) and bucket tagging.

use aws_sdk_s3::types::{CorsConfiguration, CorsRule, ObjectCannedAcl, Tag, Tagging};
use bytes::Bytes;
use cairn_integration_tests::DevCluster;
use http_body_util::{BodyExt, Empty};

use crate::error_code;

/// An unsigned request with extra headers, as a browser sends it; returns status and headers.
async fn browser(method: &str, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, http::HeaderMap)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client.request(builder.body(Empty::<Bytes>::new())?).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    response.into_body().collect().await?;
    Ok((status, headers))
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_rules_answer_preflights_and_decorate_responses() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("web").send().await?;
    let err = s3.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchCORSConfiguration"));

    let rule = CorsRule::builder()
        .allowed_origins("https://*.example.com")
        .allowed_methods("GET")
        .allowed_methods("PUT")
        .allowed_headers("x-amz-*")
        .allowed_headers("content-type")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()?;
    s3.put_bucket_cors()
        .bucket("web")
        .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build()?)
        .send()
        .await?;
    let read = s3.get_bucket_cors().bucket("web").send().await?;
    assert_eq!(read.cors_rules().len(), 1);
    assert_eq!(read.cors_rules()[0].allowed_methods(), ["GET", "PUT"]);
    assert_eq!(read.cors_rules()[0].max_age_seconds(), Some(600));

    let url = format!("{}/web/page.html", cluster.info.s3_endpoint);
    let (status, headers) = browser(
        "OPTIONS",
        &url,
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "Content-Type, X-Amz-Date"),
        ],
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(header(&headers, "access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(header(&headers, "access-control-allow-headers"), Some("content-type, x-amz-date"));
    assert_eq!(header(&headers, "access-control-max-age"), Some("600"));
    // Another origin, method or header is refused.
    for request in [
        [("origin", "https://evil.test"), ("access-control-request-method", "GET")],
        [("origin", "https://app.example.com"), ("access-control-request-method", "DELETE")],
    ] {
        assert_eq!(browser("OPTIONS", &url, &request).await?.0, 403);
    }
    let with_header = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    assert_eq!(browser("OPTIONS", &url, &with_header).await?.0, 403);

    // An actual request from an allowed origin carries the CORS headers.
    s3.put_object()
        .bucket("web")
        .key("page.html")
        .acl(ObjectCannedAcl::PublicRead)
        .body(b"<p>hi</p>".to_vec().into())
        .send()
        .await?;
    let (status, headers) = browser("GET", &url, &[("origin", "https://app.example.com")]).await?;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(header(&headers, "access-control-expose-headers"), Some("ETag"));
    let (_, headers) = browser("GET", &url, &[("origin", "https://evil.test")]).await?;
    assert!(headers.get("access-control-allow-origin").is_none());

    s3.delete_bucket_cors().bucket("web").send().await?;
    let err = s3.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchCORSConfiguration"));
    let preflight = [("origin", "https://app.example.com"), ("access-control-request-method", "GET")];
    assert_eq!(browser("OPTIONS", &url, &preflight).await?.0, 403);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_tags_are_kept_replaced_and_removed() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("tagged").send().await?;
    let err = s3.get_bucket_tagging().bucket("tagged").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchTagSet"));
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("team").value("storage").build()?)
        .tag_set(Tag::builder().key("cost-centre").value("42").build()?)
        .build()?;
    s3.put_bucket_tagging().bucket("tagged").tagging(tagging).send().await?;
    let read = s3.get_bucket_tagging().bucket("tagged").send().await?;
    let pairs: Vec<(&str, &str)> = read.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(pairs, vec![("team", "storage"), ("cost-centre", "42")]);
    s3.delete_bucket_tagging().bucket("tagged").send().await?;
    let err = s3.get_bucket_tagging().bucket("tagged").send().await.unwrap_err();
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchTagSet"));
    Ok(())
}
