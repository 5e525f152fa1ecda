//! The widget in a real browser: headless Chromium, driven through ChromeDriver, loads a
//! store's page from one origin and the widget from the edge at another, as a shopper would.
//!
//! Chromium resolves the made-up hosts to 127.0.0.1 (`--host-resolver-rules`): the store's page
//! is served from `shop.merchant-store.com` (the merchant allows `merchant-store.com`) or from
//! `evil-store.com` (nobody allows it), and the edge is `edge.mindshop.test`. Nothing leaves
//! loopback; background networking is off.
//!
//! Over HTTPS, the page comes from `https://shop.merchant-store.com` and the widget from the
//! edge's HTTPS listener (HTTP/2); Chromium trusts the test certificate by its SPKI hash only.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); ignored otherwise.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::multipart::{Form, Part};
use serde_json::json;
use support::pipeline::{
    counter, counter_reaching, create_key, create_merchant, portal_token, scrape,
};
use support::{Launch, Reply, Server, Workdir, client, free_addr};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for something to appear on the page.
const PAGE_DEADLINE: Duration = Duration::from_secs(20);

const CATALOG: &str = "sku,title,description,price,imageUrl,category,inStock\n\
    H1,Wireless headphones,Over-ear with 30 hours of battery,79.00,,Audio,yes\n\
    H2,Wireless headphones Pro,Noise cancelling over-ear,149.00,,Audio,yes\n\
    S1,Bluetooth speaker,Waterproof speaker,59.00,,Audio,yes\n";

/// ChromeDriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let addr = free_addr();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{CHROMEDRIVER} could not start ({e}): install chromium-driver")
            });
        let url = format!("http://{addr}");
        let deadline = Instant::now() + PAGE_DEADLINE;
        while client().get(format!("{url}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, url }
    }

    /// A headless Chromium that maps the test's host names to loopback.
    async fn browser(&self) -> Client {
        self.browser_trusting(None).await
    }

    /// The same, trusting a certificate whose public key has `spki` (base64 SHA-256), as
    /// `mindshop admin tls self-signed` prints it.
    async fn browser_trusting(&self, spki: Option<&str>) -> Client {
        let rules = [
            "merchant-store.com",
            "shop.merchant-store.com",
            "evil-store.com",
            "edge.mindshop.test",
        ]
        .map(|host| format!("MAP {host} 127.0.0.1"))
        .join(", ");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--no-proxy-server",
                    format!("--host-resolver-rules={rules}"),
                    format!("--ignore-certificate-errors-spki-list={}", spki.unwrap_or("")),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store's page: the documented embed, with a cart that records what the widget adds.
fn store_page(edge: SocketAddr, key: &str) -> String {
    store_page_from(&format!("http://edge.mindshop.test:{}", edge.port()), key)
}

/// The store's page with the widget from `edge` (scheme, host and port).
fn store_page_from(edge: &str, key: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Merchant store</title>
<style>* {{ font-family: serif !important; }} button {{ all: unset; }}</style></head>
<body>
<h1>Merchant store</h1>
<script src="{edge}/v1/widget.js"></script>
<script>
  window.cart = [];
  const assistant = new RAGAssistant({{
    merchantId: 'acme', apiKey: '{key}',
    apiBaseUrl: '{edge}',
    theme: {{ primaryColor: '#007bff', position: 'bottom-right' }},
    behavior: {{ autoOpen: false, greeting: 'Hi! How can I help you today?' }},
    integration: {{ addToCartCallback: (product) => {{ window.cart.push(product); }} }}
  }});
</script>
</body></html>"#
    )
}

/// Serves `page` on a loopback port, for any host name.
async fn serve_page(page: String) -> SocketAddr {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Serves `page` over HTTPS (HTTP/1.1, one answer per connection) with the certificate in
/// `dir`, as a store's own web server would.
async fn serve_page_https(page: String, dir: &Path) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    mindshop_backend::install_crypto_provider();
    let chain = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .expect("cert.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key.pem");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a server config");
    let acceptor = pingora::tls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let page = page.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// A merchant `acme` allowing `merchant-store.com`, its synced catalog (indexed for search),
/// and the publishable key its widget uses.
async fn shop() -> (Server, String) {
    shop_in(Workdir::new()).await
}

async fn shop_in(workdir: Workdir) -> (Server, String) {
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    let token = portal_token(&workdir, "acme", &[]);
    let key = create_key(&workdir, "acme", "publishable", &[]).key;
    let server = Launch::serve().start_in(workdir).await;
    let form = Form::new().part(
        "file",
        Part::bytes(CATALOG.as_bytes().to_vec()).file_name("catalog.csv"),
    );
    Reply::of(
        client()
            .post(server.url("/api/merchants/acme/sync/upload"))
            .bearer_auth(&token)
            .multipart(form),
    )
    .await
    .success(200);
    let indexed = counter_reaching(&server, "mindshop_search_indexed_products_total", &[], 3).await;
    assert_eq!(indexed, 3);
    (server, key)
}

/// The element matching `css` inside the widget's shadow root, once it is there.
async fn in_widget(browser: &Client, css: &str) -> Element {
    let deadline = Instant::now() + PAGE_DEADLINE;
    loop {
        if let Ok(host) = browser.find(Locator::Css("[data-mindshop-widget]")).await
            && let Ok(root) = host.shadow_root().await
            && let Ok(found) = root.find(Locator::Css(css)).await
        {
            return found;
        }
        if Instant::now() > deadline {
            let html = browser.source().await.unwrap_or_default();
            panic!("{css} did not appear in the widget; page: {html}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the widget, asks `query`, and returns the first product card and its title.
async fn ask_in_widget(browser: &Client, query: &str) -> (Element, String) {
    in_widget(browser, ".launcher")
        .await
        .click()
        .await
        .expect("open the widget");
    in_widget(browser, ".input")
        .await
        .send_keys(query)
        .await
        .expect("type");
    in_widget(browser, ".send")
        .await
        .click()
        .await
        .expect("send");
    let card = in_widget(browser, ".product-card").await;
    let title = card
        .find(Locator::Css(".product-title"))
        .await
        .expect("a title")
        .text()
        .await
        .expect("its text");
    (card, title)
}

async fn widget_text(browser: &Client) -> String {
    let text = browser
        .execute(
            "const host = document.querySelector('[data-mindshop-widget]');\
             return host && host.shadowRoot ? host.shadowRoot.textContent : '';",
            Vec::new(),
        )
        .await
        .expect("script");
    text.as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver: apt-get install chromium chromium-driver"]
async fn a_shopper_asks_sees_the_product_and_adds_it_to_the_cart() {
    let (server, key) = shop().await;
    let page = serve_page(store_page(server.edge, &key)).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;

    browser
        .goto(&format!("http://shop.merchant-store.com:{}/", page.port()))
        .await
        .expect("open the store");
    let (card, title) = ask_in_widget(&browser, "wireless headphones under $100").await;
    assert_eq!(title, "Wireless headphones");
    let text = widget_text(&browser).await;
    assert!(text.contains("$79.00"), "{text}");
    assert!(
        !text.contains("Wireless headphones Pro"),
        "over the price: {text}"
    );

    card.find(Locator::Css(".add-to-cart"))
        .await
        .expect("an Add to cart button")
        .click()
        .await
        .expect("add to cart");
    let cart = browser
        .execute("return window.cart;", Vec::new())
        .await
        .expect("read the cart");
    assert_eq!(cart.as_array().map(Vec::len), Some(1), "{cart}");
    assert_eq!(cart[0]["sku"], "H1", "{cart}");
    assert_eq!(cart[0]["price"], 79.0, "{cart}");

    // The widget reported its load time, and the edge recorded it.
    let loads = counter_reaching(&server, "mindshop_widget_load_seconds_count", &[], 1).await;
    assert_eq!(loads, 1);
    browser.close().await.expect("close the browser");
}

/// A store served over HTTPS loads the widget from the edge's HTTPS listener over HTTP/2 and
/// completes a chat there: no mixed content, the widget's API calls on HTTP/2 too.
#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver: apt-get install chromium chromium-driver"]
async fn over_https_a_store_loads_the_widget_over_http2_and_a_shopper_chats() {
    let workdir = Workdir::new();
    let issued = workdir
        .admin(&[
            "tls",
            "self-signed",
            "--host",
            "edge.mindshop.test",
            "--host",
            "shop.merchant-store.com",
            "--out",
            "tls",
        ])
        .json();
    let spki = issued["spkiSha256"]
        .as_str()
        .expect("spkiSha256")
        .to_owned();
    let tls = free_addr();
    std::fs::write(
        workdir.path().join("mindshop.toml"),
        format!(
            "[edge]\ntls_listen = \"{tls}\"\n\n[[edge.tls_certificates]]\ncert_file = \"tls/cert.pem\"\n\
             key_file = \"tls/key.pem\"\nhosts = [\"edge.mindshop.test\"]\n"
        ),
    )
    .expect("write mindshop.toml");
    let (server, key) = shop_in(workdir).await;
    let edge = format!("https://edge.mindshop.test:{}", tls.port());
    let page = serve_page_https(
        store_page_from(&edge, &key),
        &server.workdir().path().join("tls"),
    )
    .await;
    let driver = Driver::start().await;
    let browser = driver.browser_trusting(Some(&spki)).await;

    browser
        .goto(&format!("https://shop.merchant-store.com:{}/", page.port()))
        .await
        .expect("open the store over HTTPS");
    let (_, title) = ask_in_widget(&browser, "wireless headphones under $100").await;
    assert_eq!(title, "Wireless headphones");

    // The script and the widget's API calls came over HTTP/2, as the edge's access log says
    // (the browser hides a cross-origin resource's protocol from the page).
    let log = server.log();
    let edge_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mindshop::access") && !l.contains("path=/health"))
        .collect();
    for path in [
        "path=/v1/widget.js",
        "path=/api/chat/sessions",
        "path=/api/chat ",
    ] {
        assert!(
            edge_lines
                .iter()
                .any(|l| l.contains(path) && l.contains("version=HTTP/2.0")),
            "{path} not over HTTP/2:\n{}",
            edge_lines.join("\n")
        );
    }
    browser.close().await.expect("close the browser");
}

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver: apt-get install chromium chromium-driver"]
async fn a_store_the_merchant_did_not_allow_sees_the_refused_origin_state() {
    let (server, key) = shop().await;
    let page = serve_page(store_page(server.edge, &key)).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let rejected_before = counter(
        &scrape(&server).await,
        "mindshop_cors_rejections_total",
        &[],
    );

    browser
        .goto(&format!("http://evil-store.com:{}/", page.port()))
        .await
        .expect("open the other store");
    let notice = in_widget(&browser, ".notice[data-state=\"origin-refused\"]").await;
    let shown = notice.text().await.unwrap_or_default();
    assert!(!shown.is_empty(), "the refused-origin state says something");

    let metrics = scrape(&server).await;
    let rejected = counter(&metrics, "mindshop_cors_rejections_total", &[]);
    assert!(
        rejected > rejected_before,
        "the edge counted the refusal: {rejected_before} -> {rejected}"
    );
    let reported = counter_reaching(
        &server,
        "mindshop_widget_load_failures_total",
        &[("reason", "origin_refused")],
        1,
    )
    .await;
    assert_eq!(reported, 1);
    browser.close().await.expect("close the browser");
}

/// The answer the edge gives a refused origin, as the browser's network tab shows it: 403,
/// `CORS_ORIGIN_NOT_ALLOWED`, and no `Access-Control-Allow-Origin` (so the page cannot read it).
#[tokio::test]
async fn the_script_is_cacheable_and_a_refused_origin_is_told_why() {
    let (server, key) = shop().await;
    let script = Reply::of(
        client()
            .get(server.url("/v1/widget.js"))
            .header("Origin", "https://anywhere.example"),
    )
    .await;
    assert_eq!(script.status, 200);
    assert_eq!(script.header("access-control-allow-origin"), Some("*"));
    assert!(script.body.contains("RAGAssistant"));
    let etag = script.header("etag").expect("an ETag").to_owned();
    let again = Reply::of(
        client()
            .get(server.url("/v1/widget.js"))
            .header("If-None-Match", &etag),
    )
    .await;
    assert_eq!(again.status, 304);

    let refused = Reply::of(
        client()
            .post(server.url("/api/chat/sessions"))
            .header("X-API-Key", &key)
            .header("Origin", "http://evil-store.com")
            .json(&json!({"userId": "u1"})),
    )
    .await;
    refused.failure(403, "CORS_ORIGIN_NOT_ALLOWED");
    assert_eq!(refused.header("access-control-allow-origin"), None);
}
