//! Cursor paging shared by the List methods: one extra row tells whether another page exists.

use crate::control::AppError;
use crate::domain::page_token::{PageTokenCodec, effective_page_size};

/// A decoded page request.
pub struct PageRequest {
    /// Rows to return.
    pub size: u64,
    /// Cursor of the previous page's last row, if any.
    pub cursor: Option<String>,
}

/// Decodes `page_size` and `page_token` of a request scoped to `scope`.
pub fn page_request(
    codec: &PageTokenCodec,
    scope: &str,
    page_size: i32,
    page_token: &str,
) -> Result<PageRequest, AppError> {
    let size = effective_page_size(page_size)?;
    let cursor = if page_token.is_empty() { None } else { Some(codec.decode(scope, page_token)?) };
    Ok(PageRequest { size, cursor })
}

/// Trims a fetched list of `size + 1` rows to the page and returns the next token.
pub fn finish_page<T>(
    codec: &PageTokenCodec,
    scope: &str,
    mut rows: Vec<T>,
    size: u64,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    if rows.len() as u64 > size {
        rows.truncate(size as usize);
        let next = rows.last().map(|last| codec.encode(scope, &cursor_of(last))).unwrap_or_default();
        (rows, next)
    } else {
        (rows, String::new())
    }
}

/// Parses a numeric cursor.
pub fn numeric_cursor(cursor: Option<String>) -> Result<Option<i64>, AppError> {
    cursor
        .map(|c| c.parse::<i64>().map_err(|_| AppError::invalid("page_token", "page token is malformed")))
        .transpose()
}
