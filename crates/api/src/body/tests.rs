use super::*;

fn refused(body: &str) -> BodyError {
    value(body.as_bytes()).unwrap_err()
}

fn field(field: &str, message: &str) -> BodyError {
    BodyError::Field {
        field: field.into(),
        message: message.into(),
    }
}

#[test]
fn a_member_given_twice_is_refused_where_it_is() {
    let twice = "Given more than once";
    assert_eq!(
        refused(r#"{"amount": "1", "currency": "USD", "amount": "1000"}"#),
        field("amount", twice)
    );
    assert_eq!(
        refused(r#"{"volumes": [{"size": 1}, {"size": 2, "size": 3}]}"#),
        field("volumes[1].size", twice)
    );
    // The same name once escaped is the same member.
    assert_eq!(refused(r#"{"ab": 1, "a\u0062": 2}"#), field("ab", twice));
    assert!(value(br#"{"a": {"x": 1}, "b": {"x": 1}}"#).is_ok());
}

#[test]
fn a_string_holding_nul_is_refused_on_its_member() {
    let nul = "Must not contain the character U+0000";
    assert_eq!(refused(r#"{"note": "a\u0000b"}"#), field("note", nul));
    assert_eq!(
        refused(r#"{"labels": {"team": ["x", "\u0000"]}}"#),
        field("labels.team[1]", nul)
    );
    assert_eq!(refused(r#"{"a\u0000": 1}"#), field("body", nul));
    // An escaped backslash before u0000 is the text \u0000, not the character.
    assert_eq!(value(br#"{"note": "\\u0000"}"#).unwrap()["note"], "\\u0000");
    assert!(may_hold_nul(br#"{"note": "a\u0000b"}"#));
    assert!(!may_hold_nul(br#"{"note": "a\u0001b"}"#));
}

#[test]
fn only_objects_are_bodies() {
    assert_eq!(value(b"").unwrap(), serde_json::json!({}));
    assert_eq!(
        refused(r#"["payment.succeeded", "x"]"#),
        BodyError::NotObject
    );
    assert_eq!(refused("  "), BodyError::NotObject);
    assert!(matches!(refused("{oops"), BodyError::Syntax(_)));
    assert!(matches!(refused("{} {}"), BodyError::Syntax(_)));
}

#[test]
fn an_operation_without_a_body_takes_none_or_an_empty_object() {
    for body in ["", "{}", " { } "] {
        assert_eq!(read_none(body.as_bytes()), Ok(()), "{body:?}");
    }
    assert_eq!(
        read_none(br#"{"dry_run": true}"#),
        Err(BodyError::Fields(vec![(
            "dry_run".into(),
            "Unknown field 'dry_run'".into()
        )]))
    );
    for body in ["not json", "  ", "[]", "null", "\"{}\""] {
        assert_eq!(
            read_none(body.as_bytes()),
            Err(BodyError::NotObject),
            "{body:?}"
        );
    }
    assert!(matches!(read_none(b"{oops"), Err(BodyError::Syntax(_))));
}

#[test]
fn a_member_object_is_refused_as_a_list() {
    let read = |body: &str| read::<crate::ai::ChatCompletionsRequest>(body.as_bytes());
    let chat = r#""model": "m", "messages": [{"role": "user", "content": "hi"}]"#;
    for list in ["[true]", "[]"] {
        assert_eq!(
            read(&format!(r#"{{{chat}, "stream_options": {list}}}"#)).unwrap_err(),
            field("stream_options", "Must be an object, not a list")
        );
    }
    let with = |options: &str| {
        read(&format!(r#"{{{chat}, "stream_options": {options}}}"#))
            .unwrap()
            .stream_options
    };
    assert_eq!(with("null"), None);
    assert_eq!(
        with(r#"{"include_usage": true}"#).and_then(|o| o.include_usage),
        Some(true)
    );
    assert_eq!(
        read(&format!(
            r#"{{{chat}, "stream_options": {{"include_usage": "x"}}}}"#
        ))
        .unwrap_err(),
        field(
            "stream_options.include_usage",
            "Must be true or false, not string \"x\""
        )
    );
}

#[test]
fn typed_reads_name_the_field() {
    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[allow(dead_code)]
    struct Event {
        event: String,
        count: u32,
    }
    let read = |body: &str| read::<Event>(body.as_bytes()).unwrap_err();
    assert_eq!(
        read("{}"),
        BodyError::Missing(vec!["event".into(), "count".into()])
    );
    assert_eq!(
        read(r#"{"event": "x", "count": "7"}"#),
        field("count", "Must be a whole number, not string \"7\"")
    );
    assert!(super::read::<Event>(br#"{"event": "x", "count": 7.0}"#).is_ok());
    assert_eq!(
        read(r#"{"count": 1}"#),
        field("event", "This field is required")
    );
}

#[test]
fn an_amount_a_float_cannot_hold_is_refused_on_its_member() {
    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[allow(dead_code)]
    struct Deposit {
        #[serde(with = "crate::decimal")]
        #[schema(value_type = String)]
        amount: rust_decimal::Decimal,
    }
    let read = |body: &str| read_amounts::<Deposit>(body.as_bytes());
    assert!(read(r#"{"amount": 25.50}"#).is_ok());
    let refused = read(r#"{"currency": "USD", "amount": 5.0000000000000000001}"#).unwrap_err();
    assert!(
        matches!(&refused, BodyError::Field { field, message }
            if field == "amount" && message.contains("as a string")),
        "{refused:?}"
    );
    assert_eq!(
        read(r#"[5.0000000000000000001]"#).unwrap_err(),
        BodyError::NotObject
    );
}

#[test]
fn every_missing_member_is_named_at_once() {
    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[allow(dead_code)]
    struct Deploy {
        region: String,
        gpu_count: u32,
        #[serde(default)]
        labels: Vec<String>,
        name: String,
        note: Option<String>,
    }
    let read = |body: &str| super::read::<Deploy>(body.as_bytes()).unwrap_err();
    assert_eq!(
        read("{}"),
        BodyError::Missing(vec!["region".into(), "gpu_count".into(), "name".into()])
    );
    assert_eq!(
        read(r#"{"gpu_count": 1}"#),
        BodyError::Missing(vec!["region".into(), "name".into()])
    );
    // A value of the wrong kind does not hide the members missing, nor other values of the wrong
    // kind.
    assert_eq!(
        read(r#"{"gpu_count": "x", "note": 5}"#),
        BodyError::Fields(vec![
            (
                "gpu_count".into(),
                "Must be a whole number, not string \"x\"".into()
            ),
            ("note".into(), "Must be a string, not the number 5".into()),
            ("region".into(), "This field is required".into()),
            ("name".into(), "This field is required".into()),
        ])
    );
    assert_eq!(
        read(r#"{"gpu_count": -2, "region": "r", "name": "n"}"#),
        field("gpu_count", "Must not be negative, not the number -2")
    );
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
enum Tagged {
    Scarcity { region: String, available: u32 },
    Outage { region: String },
}

#[test]
fn a_tagged_enum_names_the_member_at_fault() {
    let read = |body: &str| super::read::<Tagged>(body.as_bytes()).unwrap_err();
    let whole = "Must be a whole number";
    assert_eq!(
        read(r#"{"kind": "scarcity", "region": "r", "available": "2"}"#),
        field("available", &format!("{whole}, not string \"2\""))
    );
    assert_eq!(
        read(r#"{"kind": "scarcity", "region": "r", "available": -2}"#),
        field("available", "Must not be negative, not the number -2")
    );
    assert_eq!(
        read(r#"{"kind": "outage", "region": "r", "zzz": 1}"#),
        field("zzz", "Unknown field 'zzz'")
    );
    let BodyError::Fields(mut both) =
        read(r#"{"kind": "scarcity", "region": 5, "available": "2"}"#)
    else {
        panic!("two members at fault")
    };
    both.sort();
    assert_eq!(
        both,
        vec![
            ("available".into(), format!("{whole}, not string \"2\"")),
            ("region".into(), "Must be a string, not the number 5".into()),
        ]
    );
    assert_eq!(
        read(r#"{"kind": 5}"#),
        field("kind", "Must be a string, not the number 5")
    );
    assert!(super::read::<Tagged>(br#"{"kind": "outage", "region": "r"}"#).is_ok());
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
struct Named {
    tier: crate::Tier,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
enum Injected {
    FailNth { tier: crate::Tier, nth: u32 },
}

#[test]
fn a_named_value_is_a_string_and_nothing_else() {
    let read = |body: &str| super::read::<Named>(body.as_bytes());
    assert_eq!(
        read(r#"{"tier": "advanced"}"#).unwrap().tier,
        crate::Tier::Advanced
    );
    for (body, message) in [
        (
            r#"{"tier": {"advanced": null}}"#,
            "Must be a string, not an object",
        ),
        (
            r#"{"tier": {"legacy": 1}}"#,
            "Must be a string, not an object",
        ),
        (r#"{"tier": 5}"#, "Must be a string, not the number 5"),
        (
            r#"{"tier": "gold"}"#,
            "Must be legacy or advanced, not \"gold\"",
        ),
    ] {
        assert_eq!(read(body).unwrap_err(), field("tier", message), "{body}");
    }
    let read = |body: &str| super::read::<Injected>(body.as_bytes()).unwrap_err();
    assert_eq!(
        read(r#"{"kind": "fail_nth", "tier": "bogus", "nth": 1}"#),
        field("tier", "Must be legacy or advanced, not \"bogus\"")
    );
    assert_eq!(
        read(r#"{"kind": "fail_nth", "tier": {"x": 1}, "nth": 1}"#),
        field("tier", "Must be a string, not an object")
    );
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Nested {
    volumes: Vec<NestedVolume>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NestedVolume {
    name: String,
    size: u32,
    tier: crate::Tier,
}

#[test]
fn every_member_at_fault_inside_a_member_is_named() {
    let read = |body: &str| super::read::<Nested>(body.as_bytes()).unwrap_err();
    let BodyError::Fields(mut all) =
        read(r#"{"volumes": [{"name": "a", "size": "x", "tier": 1}, {"size": 2, "zzz": 1}]}"#)
    else {
        panic!("several members at fault")
    };
    all.sort();
    assert_eq!(
        all,
        vec![
            (
                "volumes[0].size".into(),
                "Must be a whole number, not string \"x\"".into()
            ),
            (
                "volumes[0].tier".into(),
                "Must be a string, not the number 1".into()
            ),
            ("volumes[1].name".into(), REQUIRED_MESSAGE.into()),
            ("volumes[1].tier".into(), REQUIRED_MESSAGE.into()),
            ("volumes[1].zzz".into(), "Unknown field 'zzz'".into()),
        ]
    );
}

#[test]
fn values_of_the_wrong_kind_are_said_in_jsons_terms() {
    let plain = |message: &str| field_of("tier", message).1;
    // Not the type's range, which no field has.
    assert_eq!(
        plain("invalid type: floating point `1.5`, expected u32"),
        "Must be a whole number, not the number 1.5"
    );
    assert_eq!(
        plain("invalid value: integer `-1`, expected u32"),
        "Must not be negative, not the number -1"
    );
    assert_eq!(
        plain("invalid value: integer `99999999999`, expected u32"),
        "Must be a smaller whole number, not the number 99999999999"
    );
    assert_eq!(
        plain("invalid type: integer `5`, expected string or map"),
        "Must be a string or an object, not the number 5"
    );
    assert_eq!(
        plain("invalid type: null, expected a string"),
        "Must be a string, not null"
    );
    assert_eq!(
        plain("invalid type: boolean `true`, expected u16"),
        "Must be a whole number, not true"
    );
    assert_eq!(
        plain("invalid type: map, expected a sequence"),
        "Must be a list, not an object"
    );
    assert_eq!(
        field_of(".", "duplicate field `page`"),
        ("page".into(), "Given more than once".into())
    );
}
