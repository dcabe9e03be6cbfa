//! The tracker reader on the lab's format, odd files, and random and mutated files (both
//! scanners must agree).

use super::*;
use deltalake::arrow::util::pretty::pretty_format_batches;

fn read(text: &[u8]) -> (Result<FileOutcome, FileError>, Vec<RecordBatch>) {
    let lineage = Lineage {
        source_file: "01.json".into(),
        batch_id: 3,
        ingested_at: 0,
        first_position: 0,
    };
    let mut batches = Vec::new();
    let outcome = read_tracker(text, &lineage, &mut |b| batches.push(b));
    (outcome, batches)
}

fn rows(batches: &[RecordBatch]) -> String {
    let projected: Vec<RecordBatch> = batches
        .iter()
        .map(|b| b.project(&[0, 1, 2, 3, 7]).unwrap())
        .collect();
    pretty_format_batches(&projected).unwrap().to_string()
}

#[test]
fn reads_the_lab_format() {
    let text = br#"[
{
    "device_id": "23",
    "heartrate": "96.2296475916",
    "mrn": "40580129",
    "time": "1578301316.998366"
}
]"#;
    let (outcome, batches) = read(text);
    assert_eq!(
        outcome.unwrap(),
        FileOutcome {
            rows: 1,
            rejects: vec![]
        }
    );
    assert_eq!(
        rows(&batches),
        "\
+-----------+---------------+----------+-------------------+---------------+
| device_id | heartrate     | mrn      | time              | _rescued_data |
+-----------+---------------+----------+-------------------+---------------+
| 23        | 96.2296475916 | 40580129 | 1578301316.998366 |               |
+-----------+---------------+----------+-------------------+---------------+"
    );
}

#[test]
fn reads_lines_numbers_missing_and_extra_keys() {
    let text = "\u{feff}{\"device_id\": 7, \"heartrate\": 71.50, \"mrn\": \"1\", \"time\": 1.0}\n\n\
                {\"mrn\": \"2\", \"x\": [1, 2], \"time\": \"3\", \"y\\\"\": null}\n";
    let (outcome, batches) = read(text.as_bytes());
    assert_eq!(outcome.unwrap().rows, 2);
    assert_eq!(
        rows(&batches),
        "\
+-----------+-----------+-----+------+-------------------------+
| device_id | heartrate | mrn | time | _rescued_data           |
+-----------+-----------+-----+------+-------------------------+
| 7         | 71.50     | 1   | 1.0  |                         |
|           |           | 2   | 3    | {\"x\":[1, 2],\"y\\\"\":null} |
+-----------+-----------+-----+------+-------------------------+"
    );
}

#[test]
fn elements_that_are_not_rows_are_rejected_with_their_line() {
    let text = b"[\n  {\"mrn\": \"1\"},\n  42,\n  {\"mrn\": true},\n  {\"mrn\": \"2\"}\n]";
    let (outcome, batches) = read(text);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.rows, 2);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    let rejects: Vec<(u64, &str)> = outcome
        .rejects
        .iter()
        .map(|r| (r.line, r.message.as_str()))
        .collect();
    assert_eq!(
        rejects,
        vec![
            (3, "the element is a number, expected an object"),
            (4, "mrn holds a boolean, expected a string or a number"),
        ]
    );
}

#[test]
fn a_lone_surrogate_is_rejected_not_a_panic() {
    // Valid JSON to serde's validation, but no string can hold it.
    for text in [
        &br#"[{"mrn": "\ud800"}, {"mrn": "1"}]"#[..],
        br#"[{"\udc00": 1}, {"mrn": "1"}]"#,
    ] {
        let (outcome, _) = read(text);
        let outcome = outcome.unwrap();
        assert_eq!(outcome.rows, 1);
        assert_eq!(outcome.rejects.len(), 1);
        assert!(
            outcome.rejects[0].message.contains("cannot be decoded"),
            "{:?}",
            outcome.rejects
        );
    }
}

#[test]
fn unreadable_files_are_file_errors() {
    let cases: [(&[u8], Option<u64>, &str); 5] = [
        (b"", None, "the file is empty"),
        (b"  \n", None, "the file is empty"),
        (b"[\n {\"mrn\": \"1\"},\n {\"mr", Some(3), "truncated JSON"),
        (b"hello", Some(1), "not JSON"),
        (
            b"[{\"mrn\": \"\xff\"}]",
            Some(1),
            "invalid UTF-8 at byte 10",
        ),
    ];
    for (text, line, message) in cases {
        let (outcome, batches) = read(text);
        let error = outcome.unwrap_err();
        assert_eq!(error.line, line, "{error:?}");
        assert!(error.message.starts_with(message), "{error:?}");
        assert!(batches.is_empty());
    }
}

#[test]
fn an_empty_array_is_a_file_without_rows() {
    let (outcome, batches) = read(b"[]");
    assert_eq!(outcome.unwrap(), FileOutcome::default());
    assert!(batches.is_empty());
}

/// Both readers on the same bytes: the one-pass reader (when it takes the file) must give
/// exactly what validating then cutting gives. Returns whether the one-pass reader took it.
fn assert_paths_agree(text: &[u8]) -> bool {
    let lineage = Lineage {
        source_file: "x.json".into(),
        batch_id: 1,
        ingested_at: 5,
        first_position: 0,
    };
    let (mut fast, mut general) = (Vec::new(), Vec::new());
    let fast_outcome = read_tracker_with(text, &lineage, &mut |b| fast.push(b), true);
    let general_outcome = read_tracker_with(text, &lineage, &mut |b| general.push(b), false);
    let shown = String::from_utf8_lossy(text);
    assert_eq!(fast_outcome, general_outcome, "{shown}");
    assert_eq!(fast, general, "{shown}");
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| read_plain_array(t.strip_prefix('\u{feff}').unwrap_or(t), &lineage))
        .is_some()
}

/// A random tracker-like file, mostly valid, with the odd cases the one-pass reader must
/// either read exactly or leave to the general path.
fn random_file(rng: &mut impl rand::Rng) -> String {
    const KEYS: [&str; 9] = [
        "\"device_id\"",
        "\"heartrate\"",
        "\"mrn\"",
        "\"time\"",
        "\"extra\"",
        "\"mr\\u006e\"",
        "\"\"",
        "\"ünï\"",
        "\"a\\\"b\"",
    ];
    const VALUES: [&str; 24] = [
        "\"23\"",
        "\"96.2296475916\"",
        "\"1578301316.998366\"",
        "\"\"",
        "\"tab\\there\"",
        "\"\\ud800\"",
        "\"é ü\"",
        "12",
        "-0.5",
        "1e9",
        "2.5E-3",
        "0",
        "01",
        "1.",
        "-",
        "1e",
        "null",
        "nul",
        "true",
        "false",
        "[1, 2]",
        "{\"a\": 1}",
        "\"a\u{1}b\"",
        "NaN",
    ];
    const WS: [&str; 5] = ["", " ", "\n    ", "\r\n", "\t"];
    fn pick(options: &[&'static str], rng: &mut impl rand::Rng) -> &'static str {
        options[rng.random_range(0..options.len())]
    }
    let mut text = String::from(pick(&WS, rng));
    text.push('[');
    let elements = rng.random_range(0..6);
    for e in 0..elements {
        if e > 0 {
            text.push(',');
        }
        text.push_str(pick(&WS, rng));
        match rng.random_range(0..20) {
            0 => text.push_str(pick(&VALUES, rng)),
            _ => {
                text.push('{');
                let members = rng.random_range(0..6);
                for m in 0..members {
                    if m > 0 {
                        text.push(',');
                    }
                    text.push_str(pick(&WS, rng));
                    // Mostly the lab's keys and plain values.
                    let key = if rng.random_bool(0.8) {
                        KEYS[m % 4]
                    } else {
                        pick(&KEYS, rng)
                    };
                    text.push_str(key);
                    text.push_str(pick(&WS, rng));
                    text.push(':');
                    text.push_str(pick(&WS, rng));
                    let value = if rng.random_bool(0.7) {
                        pick(&VALUES[..4], rng)
                    } else {
                        pick(&VALUES, rng)
                    };
                    text.push_str(value);
                }
                text.push_str(pick(&WS, rng));
                text.push('}');
            }
        }
    }
    text.push_str(pick(&WS, rng));
    if rng.random_bool(0.95) {
        text.push(']');
    }
    text.push_str(pick(&WS, rng));
    text
}

#[test]
fn the_one_pass_reader_agrees_with_the_general_one_on_random_files() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut taken = 0;
    for _ in 0..20_000 {
        taken += usize::from(assert_paths_agree(random_file(&mut rng).as_bytes()));
    }
    // Both kinds of file were met: read in one pass, and left to the general path.
    assert!((2_000..18_000).contains(&taken), "{taken}");
}

#[test]
fn the_one_pass_reader_agrees_with_the_general_one_on_mutated_files() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let valid = r#"[
{
    "device_id": "23",
    "heartrate": "96.2296475916",
    "mrn": "40580129",
    "time": 1578301316.998366
},
{"device_id": "24", "mrn": null, "extra": -1.5e3, "time": "1578301317"}
]"#;
    const BYTES: &[u8] = b"[]{}\":,\\ -.0123456789eEnulltruefalse\n\x01\xc3";
    let mut taken = 0;
    for _ in 0..20_000 {
        let mut text = valid.as_bytes().to_vec();
        for _ in 0..rng.random_range(1..=3) {
            let at = rng.random_range(0..text.len());
            let byte = BYTES[rng.random_range(0..BYTES.len())];
            match rng.random_range(0..3) {
                0 => text[at] = byte,
                1 => {
                    text.remove(at);
                }
                _ => text.insert(at, byte),
            }
        }
        taken += usize::from(assert_paths_agree(&text));
    }
    assert!(taken > 1_000, "{taken}");
}

#[test]
fn large_files_come_in_bounded_batches() {
    let mut text = String::from("[");
    for i in 0..(BATCH_ROWS * 2 + 5) {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("{{\"mrn\": \"{i}\"}}"));
    }
    text.push(']');
    let (outcome, batches) = read(text.as_bytes());
    assert_eq!(outcome.unwrap().rows, BATCH_ROWS * 2 + 5);
    let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, vec![BATCH_ROWS, BATCH_ROWS, 5]);
}
