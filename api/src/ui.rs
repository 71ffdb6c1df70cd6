// SPDX-License-Identifier: GPL-2.0-only
//! The dashboard: one page and its script and style, embedded in the binary and
//! served on the API's listener. The page is static; everything it shows comes from
//! the API with the session cookie, and it writes with the session's CSRF token.
//! The CSP the server sets on HTML (`script-src 'self'`, no inline script) holds:
//! the script is a file of its own.

use warp::{http::StatusCode, Reply};

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// The asset at `path`: its content type and body.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/" => ("text/html; charset=utf-8", INDEX),
        "/ui/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/ui/app.css" => ("text/css; charset=utf-8", APP_CSS),
        _ => return None,
    })
}

pub(crate) fn serve(path: &str) -> warp::reply::Response {
    match asset(path) {
        Some((ct, body)) => warp::reply::with_header(body, "content-type", ct).into_response(),
        None => warp::reply::with_status("not found", StatusCode::NOT_FOUND).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No inline script or handler in the page (the CSP would block it), and no
    /// host but this one named.
    #[test]
    fn the_page_keeps_to_its_csp() {
        let page = INDEX.to_ascii_lowercase();
        assert!(!page.contains("<script>"), "inline script");
        assert!(
            !page.contains(" onclick=") && !page.contains(" onload="),
            "inline handler"
        );
        for text in [INDEX, APP_JS, APP_CSS] {
            assert!(
                !text.contains("http://") && !text.contains("https://")
                    || text.contains("http://www.w3.org/2000/svg"),
                "a third-party URL"
            );
        }
        // Data from the API goes in as text, never as markup.
        assert!(
            !APP_JS.contains("innerHTML")
                && !APP_JS.contains("outerHTML")
                && !APP_JS.contains("insertAdjacentHTML")
        );
    }
}
