//! The dashboard in real headless Chromium (through ChromeDriver): sign up, connect the
//! simulator's Stripe, watch the sync reach 100 %, see the MRR card show the API's value,
//! change the date range and see the charts change, invite a member. Screenshots of every step
//! go to `target/screenshots/`, at 1280 px and at 390 px wide.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::harness::Harness;

const KEY: &str = "sk_test_51BrowserAccount000000001";
const EMAIL: &str = "browser@example.com";
const PASSWORD: &str = "correct horse battery staple";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn chromedriver() -> (Driver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (scripts/ensure-tools.sh)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Driver(child), url)
}

async fn browser(driver: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until `css` matches an element, and returns it.
async fn wait_for(c: &Client, css: &str, timeout: Duration) -> fantoccini::elements::Element {
    c.wait()
        .at_most(timeout)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Clicks `css`, finding it again if the page re-rendered it between finding and clicking (a
/// click on a stale element did not happen, so retrying cannot click twice).
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match wait_for(c, css, Duration::from_secs(5)).await.click().await {
            Ok(_) => return,
            Err(e) => assert!(Instant::now() < deadline, "clicking {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = wait_for(c, css, Duration::from_secs(10)).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Sets a date input through the page's script (typing into a date field is locale-bound).
async fn set_date(c: &Client, id: &str, day: &str) {
    c.execute(
        "document.getElementById(arguments[0]).value = arguments[1];",
        vec![json!(id), json!(day)],
    )
    .await
    .unwrap();
}

/// Reads a property (`value`, `textContent`, `innerHTML`) or else an attribute of the first
/// element matching `css`, in one script: the page re-renders as data arrives, and an element
/// found in one call may be gone by the next. `None` while there is no such element.
async fn read(c: &Client, css: &str, what: &str) -> Option<String> {
    let script = "const e = document.querySelector(arguments[0]);
                  if (!e) return null;
                  const v = e[arguments[1]];
                  return v === undefined ? e.getAttribute(arguments[1]) : String(v);";
    c.execute(script, vec![json!(css), json!(what)])
        .await
        .ok()?
        .as_str()
        .map(str::to_owned)
}

/// Waits up to 10 s for `css` to exist, and reads `what` of it.
async fn read_when_there(c: &Client, css: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = read(c, css, what).await {
            return v;
        }
        assert!(Instant::now() < deadline, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn inner_html(c: &Client, css: &str) -> String {
    read_when_there(c, css, "innerHTML").await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_in_a_real_browser() {
    let h = Harness::new(300).await;
    let gateway = h.gateway().await;
    let _w = h.worker(
        "browser",
        &[("BIZ__PROVIDERS__STRIPE_TEST_REQUESTS_PER_SECOND", "1000")],
    );
    let (_driver, driver_url) = chromedriver().await;
    let c = browser(&driver_url).await;

    // Sign up.
    c.goto(&format!("{gateway}/#/signup")).await.unwrap();
    fill(&c, "#signup-form input[name=name]", "Browser Person").await;
    fill(
        &c,
        "#signup-form input[name=organization_name]",
        "Browser Co",
    )
    .await;
    fill(&c, "#signup-form input[name=email]", EMAIL).await;
    fill(&c, "#signup-form input[name=password]", PASSWORD).await;
    shot(&c, "01-signup").await;
    click(&c, "#signup-form button[type=submit]").await;

    // Connect the simulator's Stripe by key, then watch the sync reach 100 %.
    fill(&c, "#connect-stripe input[name=api_key]", KEY).await;
    click(&c, "#connect-stripe button[type=submit]").await;
    wait_for(&c, "[data-integration] .progress", Duration::from_secs(10)).await;
    shot(&c, "02-integration-syncing").await;
    wait_for(&c, "[data-percent=\"100\"]", Duration::from_secs(90)).await;
    shot(&c, "03-integration-synced").await;

    // The API's own figure, for the same range and currency.
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{gateway}/api/v1/auth/login"))
        .json(&json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let orgs: Value = http
        .get(format!("{gateway}/api/v1/orgs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = orgs["data"][0]["id"].as_str().unwrap().to_owned();
    // Rollups follow the sync: wait for December's MRR to exist through the API.
    let api_mrr = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let dash: Value = http
                .get(format!("{gateway}/api/v1/orgs/{org}/dashboard?from=2025-12-01&to=2025-12-31&currency=usd"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mrr = dash["cards"]
                .as_array()
                .and_then(|cards| cards.iter().find(|c| c["key"] == "mrr"))
                .map(|c| c["value"].clone())
                .unwrap_or(Value::Null);
            if mrr.as_i64().is_some_and(|v| v > 0) {
                break mrr.as_i64().unwrap();
            }
            assert!(Instant::now() < deadline, "no MRR through the API: {dash}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };

    // The overview, December 2025 in dollars: the MRR card shows the API's value.
    c.goto(&format!("{gateway}/#/overview")).await.unwrap();
    wait_for(&c, "#range-apply", Duration::from_secs(10)).await;
    set_date(&c, "range-from", "2025-12-01").await;
    set_date(&c, "range-to", "2025-12-31").await;
    c.execute(
        "const s = document.getElementById('currency'); s.value = 'usd'; s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "#range-apply").await;
    let shown = {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let card = "[data-card=mrr] .value";
            if read(&c, card, "data-value").await == Some(api_mrr.to_string()) {
                break read_when_there(&c, card, "textContent").await;
            }
            assert!(
                Instant::now() < deadline,
                "the MRR card never showed {api_mrr}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // And the number on screen is that amount in dollars.
    let dollars = format!("{:.2}", api_mrr as f64 / 100.0);
    let digits: String = shown
        .chars()
        .filter(|ch| ch.is_ascii_digit() || *ch == '.')
        .collect();
    assert_eq!(digits, dollars, "card text {shown}");
    wait_for(&c, "#chart-revenue svg rect", Duration::from_secs(10)).await;
    shot(&c, "04-overview-december").await;

    // Another range: the charts change.
    let before = inner_html(&c, "#chart-revenue").await;
    set_date(&c, "range-from", "2025-10-01").await;
    set_date(&c, "range-to", "2025-10-31").await;
    click(&c, "#range-apply").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = inner_html(&c, "#chart-revenue").await;
        if now != before && now.contains("2025-10-01") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revenue chart did not change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shot(&c, "05-overview-october").await;
    // Usable on a phone.
    c.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    shot(&c, "06-overview-390px").await;
    c.set_window_size(1280, 900).await.unwrap();

    // A link with a range opens the overview on it.
    c.goto(&format!(
        "{gateway}/?from=2025-11-01&to=2025-11-30#/overview"
    ))
    .await
    .unwrap();
    assert_eq!(
        read_when_there(&c, "#range-from", "value").await,
        "2025-11-01"
    );
    assert_eq!(
        read_when_there(&c, "#range-to", "value").await,
        "2025-11-30"
    );

    // Invite a member.
    c.goto(&format!("{gateway}/#/team")).await.unwrap();
    fill(
        &c,
        "#invite-form input[name=email]",
        "new.member@example.com",
    )
    .await;
    click(&c, "#invite-form button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if read(&c, "#invitation-list", "textContent")
            .await
            .is_some_and(|t| t.contains("new.member@example.com"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the invitation did not appear");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shot(&c, "07-team-invited").await;
    let invitations: Value = http
        .get(format!("{gateway}/api/v1/orgs/{org}/invitations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(invitations["data"][0]["email"], "new.member@example.com");
    c.close().await.unwrap();
}
