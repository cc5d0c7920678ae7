use super::*;

#[test]
fn token_transfers_rows() {
    let csv = "token_address,from_address,to_address,value,transaction_hash,log_index,block_number\n\
0x6b175474e89094c44da98b954eedeac495271d0f,0x1111111111111111111111111111111111111111,0x2222222222222222222222222222222222222222,1000000000000000000000,0x04cbcb236043d8fb7839e07bbc7f5eed692fb2ca55d897f1101eac3e3ad4fab8,7,10000000\n";
    let out = read_etl_csv(csv.as_bytes(), 1, "t.csv").expect("parses");
    assert_eq!(out.kind, EtlKind::TokenTransfers);
    assert_eq!(out.transfers.len(), 1);
    assert_eq!(out.transfers[0].amount, U256::from(10).pow(U256::from(21)));
    assert_eq!(
        out.transfers[0].position,
        Position::Log {
            log_index: 7,
            item: 0
        }
    );
}

#[test]
fn bad_rows_name_line_column_and_value() {
    let csv = "token_address,from_address,to_address,value,transaction_hash,log_index,block_number\n\
0x6b175474e89094c44da98b954eedeac495271d0f,0x1111111111111111111111111111111111111111,0x2222222222222222222222222222222222222222,12abc,0x04cbcb236043d8fb7839e07bbc7f5eed692fb2ca55d897f1101eac3e3ad4fab8,7,10000000\n";
    let err = read_etl_csv(csv.as_bytes(), 1, "t.csv")
        .expect_err("bad value")
        .to_string();
    assert!(
        err.contains("t.csv:2") && err.contains("value") && err.contains("12abc"),
        "{err}"
    );
    let err = read_etl_csv("a,b\n1,2\n".as_bytes(), 1, "x.csv")
        .expect_err("unknown")
        .to_string();
    assert!(
        err.contains("x.csv") && err.contains("token_address"),
        "{err}"
    );
    let tx = "hash,nonce,block_hash,block_number,transaction_index,from_address,to_address,value,gas,gas_price,input,block_timestamp\n";
    assert!(matches!(
        read_etl_csv(tx.as_bytes(), 1, "tx.csv"),
        Err(EtlError::NoReceiptStatus { .. })
    ));
}

const TX_HEADER: &str = "hash,block_number,transaction_index,from_address,to_address,value,block_timestamp,receipt_status\n";
const A: &str = "0x1111111111111111111111111111111111111111";
const B: &str = "0x2222222222222222222222222222222222222222";
const H1: &str = "0x1000000000000000000000000000000000000000000000000000000000000001";
const H2: &str = "0x2000000000000000000000000000000000000000000000000000000000000002";

fn txs(rows: &[String]) -> Result<EtlImport, EtlError> {
    let csv = format!("{TX_HEADER}{}", rows.join(""));
    read_etl_csv(csv.as_bytes(), 1, "tx.csv")
}

fn tx_row(hash: &str, block: u64, index: u32, to: &str, value: &str, status: &str) -> String {
    format!("{hash},{block},{index},{A},{to},{value},1600000000,{status}\n")
}

/// Issue 13: two transactions at one block and index were counted as one transfer and the
/// second was lost.
#[test]
fn two_hashes_at_one_block_and_index_fail_naming_both_lines() {
    let err = txs(&[
        tx_row(H1, 10_000_000, 3, B, "5", "1"),
        tx_row(H2, 10_000_000, 3, B, "7", "1"),
    ])
    .expect_err("collision")
    .to_string();
    assert!(
        err.contains("tx.csv:3") && err.contains("line 2") && err.contains(H1) && err.contains(H2),
        "{err}"
    );
    // Also when the first row moved nothing, and for traces at different positions.
    let err = txs(&[
        tx_row(H1, 10_000_000, 3, B, "0", "1"),
        tx_row(H2, 10_000_000, 3, B, "7", "1"),
    ])
    .expect_err("collision");
    assert!(
        matches!(
            err,
            EtlError::Collision {
                line: 3,
                first: 2,
                ..
            }
        ),
        "{err}"
    );
    // One hash at two places.
    let err = txs(&[
        tx_row(H1, 10_000_000, 3, B, "5", "1"),
        tx_row(H1, 10_000_001, 0, B, "5", "1"),
    ])
    .expect_err("moved");
    assert!(
        matches!(&err, EtlError::Collision { collision, .. } if matches!(**collision, Collision::TxTwice { .. })),
        "{err}"
    );
    // A row repeated exactly is a duplicate, stored once and counted.
    let out = txs(&[
        tx_row(H1, 10_000_000, 3, B, "5", "1"),
        tx_row(H1, 10_000_000, 3, B, "5", "1"),
    ])
    .expect("duplicate");
    assert_eq!((out.rows, out.transfers.len(), out.duplicates), (2, 1, 1));
    assert_eq!(out.lines, vec![2]);
}

#[test]
fn traces_of_two_transactions_at_one_index_fail() {
    let header = "block_number,transaction_hash,transaction_index,from_address,to_address,value,trace_type,call_type,trace_address,status\n";
    let csv =
        format!("{header}5,{H1},0,{A},{B},1,call,call,,1\n5,{H2},0,{A},{B},2,call,call,0,1\n");
    let err = read_etl_csv(csv.as_bytes(), 1, "traces.csv").expect_err("collision");
    assert!(
        matches!(
            err,
            EtlError::Collision {
                line: 3,
                first: 2,
                ..
            }
        ),
        "{err}"
    );
    // The same position with other content, same transaction.
    let csv =
        format!("{header}5,{H1},0,{A},{B},1,call,call,0,1\n5,{H1},0,{A},{B},2,call,call,0,1\n");
    let err = read_etl_csv(csv.as_bytes(), 1, "traces.csv").expect_err("collision");
    assert!(
        matches!(&err, EtlError::Collision { collision, .. } if matches!(**collision, Collision::Transfer { .. })),
        "{err}"
    );
}

#[test]
fn token_transfers_at_one_log_index_with_other_hashes_fail() {
    let header =
        "token_address,from_address,to_address,value,transaction_hash,log_index,block_number\n";
    let csv = format!("{header}{B},{A},{B},1,{H1},4,9\n{B},{A},{B},1,{H2},4,9\n");
    let err = read_etl_csv(csv.as_bytes(), 1, "tt.csv").expect_err("collision");
    assert!(
        matches!(
            err,
            EtlError::Collision {
                line: 3,
                first: 2,
                ..
            }
        ),
        "{err}"
    );
    let csv = format!("{header}{B},{A},{B},1,{H1},4,9\n{B},{A},{B},1,{H1},5,10\n");
    let err = read_etl_csv(csv.as_bytes(), 1, "tt.csv").expect_err("one tx, two blocks");
    assert!(
        matches!(&err, EtlError::Collision { collision, .. } if matches!(**collision, Collision::TxTwice { .. })),
        "{err}"
    );
}

/// Issue 13: anything but 0 or 1 dropped the row silently. Empty is what blockchain-etl
/// writes for receipts from before Byzantium: accepted where the row carries no value.
#[test]
fn receipt_status_is_zero_one_or_empty_before_byzantium() {
    for bad in ["2", "true", " 1", "0x1", "-1"] {
        let err = txs(&[tx_row(H1, 10_000_000, 0, B, "5", bad)])
            .expect_err(bad)
            .to_string();
        assert!(
            err.contains("tx.csv:2") && err.contains("receipt_status") && err.contains(bad),
            "{err}"
        );
    }
    let failed = txs(&[tx_row(H1, 10_000_000, 0, B, "5", "0")]).expect("failed tx");
    assert!(failed.transfers.is_empty());
    let pre = txs(&[tx_row(H1, 1_000_000, 0, B, "0", "")]).expect("zero-value, pre-Byzantium");
    assert!(pre.transfers.is_empty());
    let err = txs(&[tx_row(H1, 1_000_000, 0, B, "5", "")]).expect_err("value, status unknown");
    assert!(err.to_string().contains("traces.csv"), "{err}");
    let err = txs(&[tx_row(H1, 4_370_000, 0, B, "0", "")]).expect_err("post-Byzantium");
    assert!(err.to_string().contains("Byzantium"), "{err}");
}

/// Issue 13: zero-value rows were not validated.
#[test]
fn rows_that_move_nothing_are_validated_too() {
    for (row, column) in [
        (tx_row("0xzz", 10_000_000, 0, B, "0", "1"), "hash"),
        (tx_row(H1, 10_000_000, 0, "0x12", "0", "1"), "to_address"),
        (tx_row(H1, 10_000_000, 0, B, "", "1"), "value"),
        (tx_row(H1, 10_000_000, 0, B, "+0", "0"), "value"),
        (format!("{H1},x,0,{A},{B},0,1600000000,1\n"), "block_number"),
        (
            format!("{H1},10000000,+1,{A},{B},0,1600000000,0\n"),
            "transaction_index",
        ),
        (format!("{H1},10000000,0,{A},{B},0,,1\n"), "block_timestamp"),
    ] {
        let err = txs(&[row]).expect_err(column).to_string();
        assert!(
            err.contains("tx.csv:2") && err.contains(column),
            "{column}: {err}"
        );
    }
    let header = "block_number,transaction_hash,transaction_index,from_address,to_address,value,trace_type,call_type,trace_address,status\n";
    for (row, column) in [
        (format!("5,{H1},0,{A},0x12,0,call,call,,1\n"), "to_address"),
        (format!("5,{H1},0,{A},{B},0,call,jump,,1\n"), "call_type"),
        (format!("5,{H1},0,{A},{B},0,create,call,,1\n"), "call_type"),
        (
            format!("5,{H1},0,{A},{B},0,call,call,a,1\n"),
            "trace_address",
        ),
        (format!("5,,0,{A},{B},0,call,call,,1\n"), "transaction_hash"),
        (format!("5,{H1},0,{A},{B},,call,delegatecall,,1\n"), "value"),
        ("5,,,,0x99,5,reward,,,1\n".to_owned(), "to_address"),
    ] {
        let csv = format!("{header}{row}");
        let err = read_etl_csv(csv.as_bytes(), 1, "traces.csv")
            .expect_err(column)
            .to_string();
        assert!(
            err.contains("traces.csv:2") && err.contains(column),
            "{column}: {err}"
        );
    }
    let header =
        "token_address,from_address,to_address,value,transaction_hash,log_index,block_number\n";
    let csv = format!("{header}{B},{A},{B},,{H1},4,9\n");
    let err = read_etl_csv(csv.as_bytes(), 1, "tt.csv").expect_err("empty value");
    assert!(err.to_string().contains("value"), "{err}");
    // A zero-value token transfer is a transfer (as extraction from a node has it).
    let csv = format!("{header}{B},{A},{B},0,{H1},4,9\n");
    assert_eq!(
        read_etl_csv(csv.as_bytes(), 1, "tt.csv")
            .expect("zero")
            .transfers
            .len(),
        1
    );
}

/// Issue 13: a contract creation carrying value was dropped.
#[test]
fn a_contract_creation_moves_its_value_to_the_created_contract() {
    let header = "hash,block_number,transaction_index,from_address,to_address,value,block_timestamp,receipt_status,receipt_contract_address\n";
    let csv = format!("{header}{H1},10000000,0,{A},,5,1600000000,1,{B}\n");
    let out = read_etl_csv(csv.as_bytes(), 1, "tx.csv").expect("creation");
    assert_eq!(out.transfers.len(), 1);
    assert_eq!(
        out.transfers[0].to,
        B.parse::<alloy_primitives::Address>().expect("b")
    );
    assert_eq!(out.transfers[0].amount, U256::from(5));
    // Without the column, the file cannot say where the value went: an error, not a drop.
    let err = txs(&[tx_row(H1, 10_000_000, 0, "", "5", "1")]).expect_err("no address");
    assert!(
        matches!(err, EtlError::CreationWithoutAddress { line: 2, .. }),
        "{err}"
    );
    // With the column but empty.
    let csv = format!("{header}{H1},10000000,0,{A},,5,1600000000,1,\n");
    let err = read_etl_csv(csv.as_bytes(), 1, "tx.csv").expect_err("empty address");
    assert!(
        err.to_string().contains("receipt_contract_address"),
        "{err}"
    );
    // A failed creation moved nothing.
    let csv = format!("{header}{H1},10000000,0,{A},,5,1600000000,0,\n");
    assert!(
        read_etl_csv(csv.as_bytes(), 1, "tx.csv")
            .expect("failed")
            .transfers
            .is_empty()
    );
    // A call cannot also have created a contract.
    let csv = format!("{header}{H1},10000000,0,{A},{B},5,1600000000,1,{B}\n");
    assert!(read_etl_csv(csv.as_bytes(), 1, "tx.csv").is_err());
}

/// Issue 13: bad EIP-55 checksums were accepted here and nowhere else.
#[test]
fn mixed_case_addresses_must_carry_a_valid_checksum() {
    let good = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96";
    let bad = "0x098b716B8Aaf21512996dC57EB0615e2383E2f96";
    let upper = "0x098B716B8AAF21512996DC57EB0615E2383E2F96";
    for to in [good, upper, &good.to_lowercase()] {
        txs(&[tx_row(H1, 10_000_000, 0, to, "5", "1")]).expect(to);
    }
    let err = txs(&[tx_row(H1, 10_000_000, 0, bad, "5", "1")])
        .expect_err("bad checksum")
        .to_string();
    assert!(
        err.contains("to_address") && err.contains(bad) && err.contains("EIP-55"),
        "{err}"
    );
    // No 0x: not an address here either.
    let err = txs(&[tx_row(H1, 10_000_000, 0, &good[2..], "5", "1")]).expect_err("no 0x");
    assert!(err.to_string().contains("to_address"), "{err}");
}

#[test]
fn a_block_has_one_hash_and_one_timestamp() {
    let header = "hash,block_number,transaction_index,from_address,to_address,value,block_timestamp,receipt_status,block_hash\n";
    let csv = format!(
        "{header}{H1},10000000,0,{A},{B},5,1600000000,1,{H1}\n{H2},10000000,1,{A},{B},5,1600000000,1,{H2}\n"
    );
    let err = read_etl_csv(csv.as_bytes(), 1, "tx.csv").expect_err("two hashes");
    assert!(
        matches!(&err, EtlError::Collision { collision, line: 3,
                first: 2,.. } if matches!(**collision, Collision::BlockHash { .. })),
        "{err}"
    );
    let err = txs(&[
        tx_row(H1, 10_000_000, 0, B, "5", "1"),
        format!("{H2},10000000,1,{A},{B},5,1600000001,1\n"),
    ])
    .expect_err("two timestamps");
    assert!(
        matches!(&err, EtlError::Collision { collision, .. } if matches!(**collision, Collision::BlockTimestamp { .. })),
        "{err}"
    );
    let dup = format!("hash,value,{}", &TX_HEADER[5..]);
    assert!(matches!(
        read_etl_csv(dup.as_bytes(), 1, "tx.csv"),
        Err(EtlError::DuplicateColumn { .. })
    ));
}
