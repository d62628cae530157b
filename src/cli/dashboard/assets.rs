//! The front end, embedded so the binary is self-contained and `cargo build` needs no npm: the
//! sources of `dashboard/src/` as written (no build step), and uPlot as `dashboard/vendor.sh` copies
//! it from the pinned npm package into `dashboard/vendor/`.

/// The page every route of the front end loads.
pub const INDEX_HTML: &str = include_str!("../../../dashboard/src/index.html");

/// An embedded file: its name under `/_/`, content type and bytes.
pub struct Asset {
    /// The name under `/_/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// Every embedded file but the page.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../dashboard/src/app.js"),
    },
    Asset {
        name: "plots.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../dashboard/src/plots.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../dashboard/src/style.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../dashboard/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../dashboard/vendor/uPlot.min.css"),
    },
];

/// The embedded file `name`.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}
