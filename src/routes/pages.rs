//! The web page: one HTML file with its scripts and stylesheet, compiled into the binary.

use actix_web::{web, HttpResponse};

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `(name, content type, contents)` of the file `static/<name>`, compiled in.
macro_rules! static_file {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            $content_type,
            include_str!(concat!("../../static/", $name)),
        )
    };
}

/// Every file served under `/static/`, by its name there. A new file in `static/` (other than
/// `index.html`, served by [`index`]) must be added here; a test checks that none is missing.
const ASSETS: &[(&str, &str, &str)] = &[
    static_file!("app.css", CSS),
    static_file!("js/api.js", JS),
    static_file!("js/deposit.js", JS),
    static_file!("js/dom.js", JS),
    static_file!("js/idempotency.js", JS),
    static_file!("js/main.js", JS),
    static_file!("js/money.js", JS),
    static_file!("js/session.js", JS),
    static_file!("js/settings.js", JS),
    static_file!("js/state.js", JS),
    static_file!("js/transactions.js", JS),
    static_file!("js/withdraw.js", JS),
];

pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(include_str!("../../static/index.html"))
}

/// `GET /static/{name:.*}`: a file from [`ASSETS`], or a JSON `404`.
pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header(("Cache-Control", "no-cache"))
            .body(*body),
        None => not_found().await,
    }
}

/// Anything else: a JSON `404`.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": {"code": "not_found", "message": "There is nothing here."}
    }))
}

#[cfg(test)]
mod tests {
    use super::ASSETS;
    use std::path::Path;

    /// Every file under `static/` except `index.html` and hidden ones, as "js/main.js".
    fn files_on_disk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read static/") {
            let entry = entry.expect("read static/ entry");
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                continue;
            }
            let name = format!("{prefix}{file}");
            if entry.path().is_dir() {
                files_on_disk(&entry.path(), &format!("{name}/"), out);
            } else if name != "index.html" {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_static_file_is_served_once() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut on_disk = Vec::new();
        files_on_disk(&dir, "", &mut on_disk);
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
        served.sort();
        assert_eq!(
            served, on_disk,
            "ASSETS in src/routes/pages.rs and static/ differ"
        );
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (name, content_type, _) in ASSETS {
            let want = if name.ends_with(".js") {
                super::JS
            } else if name.ends_with(".css") {
                super::CSS
            } else {
                panic!("{name}: no content type known for this extension")
            };
            assert_eq!(*content_type, want, "{name}");
        }
    }
}
