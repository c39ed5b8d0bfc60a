//! The page as a PDF: the `agp.svg` drawing parsed by usvg and written by svg2pdf, its text
//! kept as text in the bundled fonts, each subset to the glyphs the page uses.
//!
//! Lambda has no system fonts, and text drawn in a font that is not there silently
//! vanishes; so the fonts are loaded from one folder (the fonts layer) at cold start, and a
//! folder without a font stops the cold start instead.

use crate::report::{AgpPage, agp_data, agp_page};
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::time::{Included, SourceZone, TimeRange};
use std::path::Path;
use std::sync::Arc;
use svg2pdf::usvg;
/// The font database the converter reads (usvg's), memory-mapping the files.
pub use svg2pdf::usvg::fontdb;
use svg2pdf::{ConversionOptions, PageOptions};

/// The family the page names for every script, Chinese included (`tools/install.sh fonts`).
pub const FONT_FAMILY: &str = "Noto Sans CJK SC";

/// The page is drawn at 96 px per inch (CSS pixels): 794 × 1123 px is A4.
const DPI: f32 = 96.0;

#[derive(Debug, thiserror::Error)]
pub enum FontsError {
    #[error(
        "the font folder {dir} cannot be read ({kind}): deploy the fonts layer, or run tools/install.sh fonts locally"
    )]
    Unreadable { dir: String, kind: std::io::ErrorKind },
    #[error("the font folder {dir} holds no .otf, .ttf, .otc or .ttc font")]
    Empty { dir: String },
}

/// Where the fonts layer (the template's `FontsLayer`) puts its fonts in Lambda.
pub const DEFAULT_FONT_DIR: &str = "/opt/fonts";

/// The fonts of `AGP_FONT_DIR` (`setting`), else of the fonts layer's [`DEFAULT_FONT_DIR`]:
/// how every function that typesets a PDF loads them at cold start. Its caller refuses to
/// start on an error: a PDF whose text silently vanished would be worse than none.
pub fn load_configured_fonts(setting: Option<&str>) -> Result<fontdb::Database, FontsError> {
    load_fonts(Path::new(setting.unwrap_or(DEFAULT_FONT_DIR)))
}

/// Every font file in `dir` (not its subfolders), with sans-serif set to [`FONT_FAMILY`]
/// when it is among them.
pub fn load_fonts(dir: &Path) -> Result<fontdb::Database, FontsError> {
    let unreadable = |e: std::io::Error| FontsError::Unreadable { dir: dir.display().to_string(), kind: e.kind() };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ["otf", "ttf", "otc", "ttc"].contains(&x.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    let mut db = fontdb::Database::new();
    for f in files {
        db.load_font_file(&f).map_err(unreadable)?;
    }
    if db.is_empty() {
        return Err(FontsError::Empty { dir: dir.display().to_string() });
    }
    let family = if db.faces().any(|f| f.families.iter().any(|(n, _)| n == FONT_FAMILY)) {
        FONT_FAMILY.to_string()
    } else {
        db.faces().next().and_then(|f| f.families.first()).map(|(n, _)| n.clone()).unwrap_or_default()
    };
    db.set_sans_serif_family(family);
    Ok(db)
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the page is not SVG that usvg reads ({0})")]
    Svg(String),
    #[error("svg2pdf failed ({0})")]
    Convert(String),
}

/// One PDF page of `svg`'s size (A4 for the AGP page).
pub fn to_pdf(svg: &str, fonts: &Arc<fontdb::Database>) -> Result<Vec<u8>, PdfError> {
    let options = usvg::Options { fontdb: fonts.clone(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| PdfError::Svg(e.to_string()))?;
    svg2pdf::to_pdf(&tree, ConversionOptions::default(), PageOptions { dpi: DPI })
        .map_err(|e| PdfError::Convert(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum AgpPdfError {
    #[error(transparent)]
    Read(#[from] ReadAllError),
    #[error(transparent)]
    Pdf(#[from] PdfError),
}

/// The ambulatory glucose profile of `sn` over `range` as one A4 PDF page, with `patient`
/// as a header line when given: the page (whose `svg` it was made from) and the PDF. What
/// `agp.pdf` serves and a FHIR `cgm-summary-pdf` carries, so they cannot drift apart. The
/// typesetting, CPU work of tens of milliseconds, runs off the async workers.
pub async fn agp_pdf<S: ReadStore, U: RollupStore>(
    store: &S,
    rollups: &U,
    zone: &SourceZone,
    sn: &DeviceSn,
    range: TimeRange<Included>,
    patient: Option<&str>,
    fonts: &Arc<fontdb::Database>,
) -> Result<(AgpPage, Vec<u8>), AgpPdfError> {
    let data = agp_data(store, rollups, zone, sn, range).await?;
    let page = agp_page(sn, zone, &data, patient);
    let (svg, fonts) = (page.svg.clone(), fonts.clone());
    let pdf = tokio::task::spawn_blocking(move || to_pdf(&svg, &fonts))
        .await
        .map_err(|_| PdfError::Convert("the conversion task ended".into()))??;
    Ok((page, pdf))
}
