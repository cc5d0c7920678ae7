//! Plain address lists for `intel import`: one address per line, or a CSV with an `address`
//! column (other columns ignored; a `chain` column, if present, is used per row).

use holdfast_primitives::Chain;

use super::{SourceError, csv_error};

/// One address of a list, with the line it came from (1-based) and its chain, if the file
/// gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAddress {
    pub line: usize,
    pub address: String,
    pub chain: Option<Chain>,
}

pub fn parse(text: &str, source: &str) -> Result<Vec<ListedAddress>, SourceError> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let lower = first.to_ascii_lowercase();
    let has_header = lower
        .split(',')
        .any(|c| c.trim().trim_matches('"') == "address");
    if !has_header {
        // Blank lines and `#` comments are not rows; any other line must hold an address.
        let mut out = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let a = l.trim_matches(',').trim_matches('"').trim();
            if a.is_empty() {
                return Err(no_address(source, i + 1));
            }
            out.push(ListedAddress {
                line: i + 1,
                address: a.to_owned(),
                chain: None,
            });
        }
        return Ok(out);
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(source, e))?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let Some(addr_col) = col("address") else {
        return Err(SourceError::Format {
            source_name: source.to_owned(),
            message: "no `address` column".into(),
        });
    };
    let chain_col = col("chain");
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| csv_error(source, e))?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let address = rec.get(addr_col).unwrap_or("").trim().to_owned();
        if address.is_empty() {
            return Err(no_address(source, line));
        }
        let chain = match chain_col
            .and_then(|c| rec.get(c))
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => Some(c.parse::<Chain>().map_err(|e| SourceError::Field {
                source_name: source.to_owned(),
                row: line,
                field: "chain",
                message: e.to_string(),
            })?),
            None => None,
        };
        out.push(ListedAddress {
            line,
            address,
            chain,
        });
    }
    Ok(out)
}

/// A row of a list without an address: an error, never a row quietly dropped (the list's
/// author meant something by it).
fn no_address(source: &str, line: usize) -> SourceError {
    SourceError::Field {
        source_name: source.to_owned(),
        row: line,
        field: "address",
        message: "the row has no address".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_address_column() {
        let plain = parse("# FBI list\n0xabc\n\n bc1qxyz \n", "f").expect("ok");
        assert_eq!(
            plain
                .iter()
                .map(|a| (a.line, a.address.as_str()))
                .collect::<Vec<_>>(),
            vec![(2, "0xabc"), (4, "bc1qxyz")]
        );
        let csv = parse("name,address,chain\nx,0xabc,eth\ny,TXYZ,tron\n", "f").expect("ok");
        assert_eq!(csv.len(), 2);
        assert_eq!(csv[1].chain, Some(Chain::Tron));
        assert_eq!(csv[1].line, 3);
    }

    #[test]
    fn unknown_chain_names_row() {
        let err = parse("address,chain\n0xabc,mars\n", "f.csv").expect_err("bad chain");
        let msg = err.to_string();
        assert!(
            msg.contains("f.csv") && msg.contains("row 2") && msg.contains("mars"),
            "{msg}"
        );
    }
}
