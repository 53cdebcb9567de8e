//! Validation cases, JSON round trips and properties of [`Message`].

use super::validate::{NOTIFICATION_FIELDS, check_message_id};
use super::*;
use proptest::prelude::*;
use serde_json::json;

/// What a validation case must produce.
enum Want {
    Valid,
    /// Exactly this error.
    Is(ValidationError),
    /// `InvalidField` for this field.
    Field(&'static str),
}

fn inp(fields: Value) -> String {
    fields.to_string()
}

fn validation_cases() -> Vec<(String, Want, &'static str)> {
    use ValidationError::*;
    use Want::*;
    let long_id = "a".repeat(MAX_MESSAGE_ID_LEN);
    let too_long_id = "a".repeat(MAX_MESSAGE_ID_LEN + 1);
    let mut cases = vec![
        // Targets.
        (inp(json!({"to": "tok"})), Valid, ""),
        (inp(json!({"to": "/topics/news-1_a.b~c%20"})), Valid, ""),
        (
            inp(json!({"condition": "'a' in topics && 'b' in topics"})),
            Valid,
            "",
        ),
        (inp(json!({})), Is(MissingTarget), "`to`"),
        (
            inp(json!({"to": "a", "condition": "b"})),
            Is(ConflictingTargets),
            "`condition`",
        ),
        (inp(json!({"to": ""})), Field("to"), "must not be empty"),
        (inp(json!({"to": "t".repeat(MAX_FIELD_BYTES)})), Valid, ""),
        (
            inp(json!({"to": "t".repeat(MAX_FIELD_BYTES + 1)})),
            Field("to"),
            "is 1025 bytes long: at most 1024",
        ),
        (
            inp(json!({"condition": "c".repeat(MAX_FIELD_BYTES + 1)})),
            Field("condition"),
            "at most 1024",
        ),
        (
            inp(json!({"condition": ""})),
            Field("condition"),
            "must not be empty",
        ),
        (
            inp(json!({"to": 5})),
            Field("to"),
            "must be a string, got number",
        ),
        (inp(json!({"to": null})), Field("to"), "got null"),
        (
            inp(json!({"to": "/topics/"})),
            Field("to"),
            "[a-zA-Z0-9-_.~%]+",
        ),
        (
            inp(json!({"to": "/topics/a b"})),
            Field("to"),
            "topic name \"a b\"",
        ),
        (
            inp(json!({"condition": ["a"]})),
            Field("condition"),
            "got array",
        ),
        // message_id.
        (inp(json!({"to": "t", "message_id": "m-1:x/y"})), Valid, ""),
        (inp(json!({"to": "t", "message_id": long_id})), Valid, ""),
        (
            inp(json!({"to": "t", "message_id": too_long_id})),
            Field("message_id"),
            "at most 100",
        ),
        (
            inp(json!({"to": "t", "message_id": ""})),
            Field("message_id"),
            "must not be empty",
        ),
        (
            inp(json!({"to": "t", "message_id": "m 1"})),
            Field("message_id"),
            "printable ASCII",
        ),
        (
            inp(json!({"to": "t", "message_id": "m-é"})),
            Field("message_id"),
            "'é'",
        ),
        (
            inp(json!({"to": "t", "message_id": 7})),
            Field("message_id"),
            "must be a string",
        ),
        // time_to_live.
        (inp(json!({"to": "t", "time_to_live": 0})), Valid, ""),
        (
            inp(json!({"to": "t", "time_to_live": 2_419_200})),
            Valid,
            "",
        ),
        (
            inp(json!({"to": "t", "time_to_live": -1})),
            Is(TtlOutOfRange(-1)),
            "between 0 and 2419200",
        ),
        (
            inp(json!({"to": "t", "time_to_live": 2_419_201})),
            Is(TtlOutOfRange(2_419_201)),
            "2419200",
        ),
        (
            inp(json!({"to": "t", "time_to_live": u64::MAX})),
            Is(TtlOutOfRange(i64::MAX)),
            "2419200",
        ),
        (
            inp(json!({"to": "t", "time_to_live": "600"})),
            Field("time_to_live"),
            "integer number of seconds, got string",
        ),
        (
            inp(json!({"to": "t", "time_to_live": 600.5})),
            Field("time_to_live"),
            "got 600.5",
        ),
        (
            inp(json!({"to": "t", "time_to_live": null})),
            Field("time_to_live"),
            "got null",
        ),
        // collapse_key.
        (inp(json!({"to": "t", "collapse_key": "k"})), Valid, ""),
        (
            inp(json!({"to": "t", "collapse_key": "k".repeat(MAX_FIELD_BYTES + 1)})),
            Field("collapse_key"),
            "field `collapse_key`: is 1025 bytes long: at most 1024",
        ),
        (
            inp(json!({"to": "t", "collapse_key": 5})),
            Field("collapse_key"),
            "field `collapse_key`: must be a string, got number",
        ),
        // priority.
        (inp(json!({"to": "t", "priority": "normal"})), Valid, ""),
        (inp(json!({"to": "t", "priority": "high"})), Valid, ""),
        (
            inp(json!({"to": "t", "priority": "urgent"})),
            Field("priority"),
            "\"normal\" or \"high\"",
        ),
        (
            inp(json!({"to": "t", "priority": 10})),
            Field("priority"),
            "got number",
        ),
        // data.
        (inp(json!({"to": "t", "data": {}})), Valid, ""),
        (
            inp(json!({"to": "t", "data": {"k": "v", "n": 1, "o": {"x": [true]}}})),
            Valid,
            "",
        ),
        (
            inp(json!({"to": "t", "data": {"from_me": "ok", "my_gcm": "ok"}})),
            Valid,
            "",
        ),
        (
            inp(json!({"to": "t", "data": ["k"]})),
            Field("data"),
            "must be an object, got array",
        ),
        (
            inp(json!({"to": "t", "data": {"from": "x"}})),
            Is(ReservedDataKey("from".into())),
            "`from`",
        ),
        (
            inp(json!({"to": "t", "data": {"google.sent": "x"}})),
            Is(ReservedDataKey("google.sent".into())),
            "`google.sent`",
        ),
        (
            inp(json!({"to": "t", "data": {"gcm_x": "x"}})),
            Is(ReservedDataKey("gcm_x".into())),
            "`gcm_x`",
        ),
        // notification.
        (
            inp(json!({"to": "t", "notification": {"title": "T", "body": "B", "image": "u"}})),
            Valid,
            "",
        ),
        (
            inp(json!({"to": "t", "notification": "hi"})),
            Field("notification"),
            "must be an object",
        ),
        (
            inp(json!({"to": "t", "notification": {"title": 1}})),
            Field("notification.title"),
            "must be a string, got number",
        ),
        (
            inp(json!({"to": "t", "notification": {"image": null}})),
            Field("notification.image"),
            "got null",
        ),
        // Fields that do not belong in a downstream XMPP message.
        (
            inp(json!({"registration_ids": ["a"]})),
            Is(HttpOnlyField {
                field: "registration_ids",
                hint: "use the HTTP sender for multicast",
            }),
            "`registration_ids` is not valid over XMPP: use the HTTP sender",
        ),
        (
            inp(json!({"to": "t", "notification_key": "k"})),
            Is(HttpOnlyField {
                field: "notification_key",
                hint: "put the notification key in `to`",
            }),
            "`notification_key`",
        ),
        (
            inp(json!({"to": "t", "restricted_package_name": "p"})),
            Is(HttpOnlyField {
                field: "restricted_package_name",
                hint: "it is documented for the HTTP API only",
            }),
            "`restricted_package_name`",
        ),
        (
            inp(json!({"to": "t", "message_type": "ack"})),
            Field("message_type"),
            "not allowed",
        ),
        (
            inp(json!({"to": "t", "ttl": 60})),
            Field("ttl"),
            "field `ttl`: unknown field",
        ),
        // Not a JSON object.
        (
            "[1]".into(),
            Is(Json("a message must be a JSON object, got array".into())),
            "got array",
        ),
        (
            "\"to\"".into(),
            Is(Json("a message must be a JSON object, got string".into())),
            "got string",
        ),
        ("{\"to\":".into(), Field("-"), "invalid JSON"),
    ];
    for name in [
        "content_available",
        "mutable_content",
        "delay_while_idle",
        "delivery_receipt_requested",
        "dry_run",
    ] {
        cases.push((inp(json!({"to": "t", name: true})), Valid, ""));
        cases.push((
            inp(json!({"to": "t", name: "true"})),
            Field(name),
            "must be a boolean, got string",
        ));
    }
    cases
}

#[test]
fn validation_table() {
    for (input, want, display) in validation_cases() {
        let got = Message::from_json(&input);
        match (&got, want) {
            (Ok(_), Want::Valid) => continue,
            (Err(e), Want::Is(expected)) => assert_eq!(e, &expected, "{input}"),
            (Err(ValidationError::InvalidField { field, .. }), Want::Field(f)) => {
                assert_eq!(field, f, "{input}")
            }
            // Unparseable JSON: only the variant is ours, the text is serde_json's.
            (Err(ValidationError::Json(_)), Want::Field("-")) => {}
            (got, _) => panic!("{input}: unexpected {got:?}"),
        }
        let text = got.unwrap_err().to_string();
        assert!(
            text.contains(display),
            "{input}: {text:?} lacks {display:?}"
        );
    }
}

#[test]
fn builder_applies_the_same_rules() {
    use ValidationError::*;
    assert_eq!(Message::builder().build(), Err(MissingTarget));
    assert_eq!(
        Message::to("a").condition("b").build(),
        Err(ConflictingTargets)
    );
    assert_eq!(
        Message::to("t").time_to_live(MAX_TTL + 1).build(),
        Err(TtlOutOfRange(2_419_201))
    );
    assert_eq!(
        Message::to("t").data("gcm.x", "1").build(),
        Err(ReservedDataKey("gcm.x".into()))
    );
    assert!(matches!(
        Message::to("t").message_id("has space").build(),
        Err(InvalidField { field, .. }) if field == "message_id"
    ));
    assert!(matches!(
        Message::to("/topics/bad!").build(),
        Err(InvalidField { field, .. }) if field == "to"
    ));
}

#[test]
fn notification_extra_must_not_repeat_a_named_field() {
    // Every named field, as serde writes it, is in the list.
    let all = Notification {
        title: Some(String::new()),
        body: Some(String::new()),
        icon: Some(String::new()),
        sound: Some(String::new()),
        badge: Some(String::new()),
        tag: Some(String::new()),
        color: Some(String::new()),
        click_action: Some(String::new()),
        body_loc_key: Some(String::new()),
        body_loc_args: Some(String::new()),
        title_loc_key: Some(String::new()),
        title_loc_args: Some(String::new()),
        android_channel_id: Some(String::new()),
        subtitle: Some(String::new()),
        extra: BTreeMap::new(),
    };
    let Value::Object(named) = to_value(&all) else {
        panic!()
    };
    assert_eq!(
        named.keys().collect::<Vec<_>>().len(),
        NOTIFICATION_FIELDS.len()
    );
    assert!(
        named
            .keys()
            .all(|k| NOTIFICATION_FIELDS.contains(&k.as_str()))
    );

    for (title, key) in [(Some("a"), "title"), (None, "body")] {
        let notification = Notification {
            title: title.map(str::to_owned),
            extra: [(key.to_owned(), "b".to_owned())].into(),
            ..Notification::default()
        };
        let err = Message::to("t")
            .notification(notification)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, ValidationError::InvalidField { field, .. } if *field == format!("notification.{key}")),
            "{err:?}"
        );
        assert!(err.to_string().contains("not in `extra`"), "{err}");
    }
}

#[test]
fn largest_valid_message_fits_a_stanza_cap_with_room_to_spare() {
    // Every length at its limit, filled with the characters that expand most: a control
    // character becomes `\u0001` (6 bytes) in JSON, `&` becomes `&amp;` (5) in XML.
    for c in ["\u{1}", "&"] {
        let m = Message::to(c.repeat(MAX_FIELD_BYTES))
            .message_id("m".repeat(MAX_MESSAGE_ID_LEN))
            .collapse_key(c.repeat(MAX_FIELD_BYTES))
            .data("k", c.repeat(MAX_PAYLOAD_BYTES - 1))
            .build()
            .unwrap();
        let mut stanza = Vec::new();
        crate::wire::write::gcm_message(&mut stanza, m.message_id(), &m.to_json()).unwrap();
        let cap = crate::wire::Limits::default().max_stanza_bytes;
        assert!(stanza.len() < cap * 3 / 4, "{} bytes", stanza.len());
    }
}

/// Found by the `message_roundtrip` fuzzer: without correctly rounded float parsing, a
/// long number parsed to one `f64` and its printed form back to another.
#[test]
fn numbers_in_data_survive_a_round_trip() {
    let number = format!("{}3600", "2".repeat(74));
    let m = Message::from_json(&format!(r#"{{"to":"t","data":{{"n":{number}}}}}"#)).unwrap();
    assert_eq!(Message::from_json(&m.to_json()), Ok(m));
}

#[test]
fn ttl_zero_is_serialized() {
    let m = Message::to("t")
        .message_id("m-1")
        .time_to_live(0)
        .build()
        .unwrap();
    assert_eq!(
        m.to_json(),
        r#"{"to":"t","message_id":"m-1","time_to_live":0}"#
    );
    assert_eq!(m.to_json_value()["time_to_live"], json!(0));
}

fn full_message() -> Message {
    Message::builder()
        .condition("'a' in topics")
        .message_id("m-42")
        .collapse_key("inbox")
        .priority(Priority::High)
        .content_available(true)
        .mutable_content(true)
        .time_to_live(3600)
        .delay_while_idle(true)
        .delivery_receipt_requested(true)
        .dry_run(true)
        .data("thread", "42")
        .data("count", 3)
        .notification(Notification {
            title: Some("Tom & Jerry <3".into()),
            body_loc_args: Some(r#"["a","b"]"#.into()),
            extra: [("image".to_owned(), "https://x/y.png".to_owned())].into(),
            ..Notification::default()
        })
        .build()
        .unwrap()
}

#[test]
fn to_json_writes_every_set_field_in_order() {
    assert_eq!(
        full_message().to_json(),
        concat!(
            r#"{"condition":"'a' in topics","message_id":"m-42","collapse_key":"inbox","#,
            r#""priority":"high","content_available":true,"mutable_content":true,"#,
            r#""time_to_live":3600,"delay_while_idle":true,"delivery_receipt_requested":true,"#,
            r#""dry_run":true,"data":{"count":3,"thread":"42"},"#,
            r#""notification":{"title":"Tom & Jerry <3","body_loc_args":"[\"a\",\"b\"]","image":"https://x/y.png"}}"#
        )
    );
}

#[test]
fn builder_round_trips_through_json() {
    let m = full_message();
    assert_eq!(Message::from_json(&m.to_json()), Ok(m.clone()));
    assert_eq!(Message::from_json_value(m.to_json_value()), Ok(m));
}

#[test]
fn accessors_read_what_was_built() {
    let m = full_message();
    assert_eq!(m.target(), &Target::Condition("'a' in topics".into()));
    assert_eq!(m.target_str(), "'a' in topics");
    assert_eq!(m.message_id(), "m-42");
    assert_eq!(m.collapse_key(), Some("inbox"));
    assert_eq!(m.priority(), Some(Priority::High));
    assert_eq!(m.time_to_live(), Some(3600));
    assert!(m.content_available() && m.mutable_content() && m.delay_while_idle());
    assert!(m.delivery_receipt_requested() && m.dry_run());
    assert_eq!(m.data().unwrap()["count"], json!(3));
    assert_eq!(m.notification().unwrap().extra["image"], "https://x/y.png");
    let bare = Message::to("tok").build().unwrap();
    assert_eq!(
        bare.to_json(),
        format!(r#"{{"to":"tok","message_id":"{}"}}"#, bare.message_id())
    );
    assert_eq!(
        (bare.priority(), bare.time_to_live(), bare.data()),
        (None, None, None)
    );
}

#[test]
fn missing_message_id_is_generated() {
    let m = Message::from_json(r#"{"to":"t"}"#).unwrap();
    assert!(m.message_id().starts_with("m-"));
}

#[test]
fn generated_ids_are_unique_and_well_formed() {
    let ids: std::collections::HashSet<String> =
        (0..10_000).map(|_| generate_message_id()).collect();
    assert_eq!(ids.len(), 10_000);
    for id in &ids {
        let hex = id.strip_prefix("m-").unwrap();
        assert_eq!(hex.len(), 32, "{id}");
        assert!(
            hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{id}"
        );
        let value = u128::from_str_radix(hex, 16).unwrap();
        assert_eq!(format!("{value:032x}"), hex);
        assert_eq!(check_message_id(id.clone()).as_ref(), Ok(id));
    }
}

#[test]
fn payload_limit_is_4096_bytes_of_keys_and_values() {
    let at_limit = Message::to("t")
        .data("k", "x".repeat(4095))
        .build()
        .unwrap();
    assert_eq!(at_limit.payload_size(), 4096);
    assert_eq!(
        Message::to("t").data("k", "x".repeat(4096)).build(),
        Err(ValidationError::PayloadTooLarge {
            size: 4097,
            limit: 4096
        })
    );
    let err = Message::to("t")
        .data("k", "x".repeat(4096))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("4097 bytes") && err.to_string().contains("4096 bytes"));
    // Non-string values count as JSON text; notification entries count too.
    let notification = Notification {
        title: Some("é".into()),
        ..Notification::default()
    };
    let m = Message::to("t")
        .data("n", 12345)
        .data("o", json!({"a": "b"}))
        .notification(notification)
        .build()
        .unwrap();
    assert_eq!(m.payload_size(), (1 + 5) + (1 + 9) + (5 + 2));
    let over = Notification {
        body: Some("x".repeat(4093)),
        ..Notification::default()
    };
    assert!(matches!(
        Message::to("t").notification(over).build(),
        Err(ValidationError::PayloadTooLarge { size: 4097, .. })
    ));
}

#[test]
fn priority_uses_lowercase_strings() {
    assert_eq!(
        serde_json::to_string(&Priority::Normal).unwrap(),
        r#""normal""#
    );
    assert_eq!(
        serde_json::from_str::<Priority>(r#""high""#).unwrap(),
        Priority::High
    );
    assert_eq!("high".parse::<Priority>(), Ok(Priority::High));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u32..3_000_000).prop_map(Value::from),
        // Eighths print and parse back exactly.
        (-8000i32..8000).prop_map(|i| Value::from(f64::from(i) / 8.0)),
        "[a-zA-Z0-9/%~. &<é\"-]{0,12}".prop_map(Value::from),
        Just(Value::from("normal")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_.]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every member a downstream object may have, and two it must not.
fn fields() -> Vec<&'static str> {
    super::json::MEMBERS
        .into_iter()
        .chain(["message_type", "registration_ids"])
        .collect()
}

/// Objects with mostly known keys and a usually valid `to`, so that many validate.
fn message_object() -> impl Strategy<Value = Value> {
    let key = prop_oneof![4 => prop::sample::select(fields()).prop_map(str::to_owned), 1 => "[a-z_]{1,8}"];
    let to = prop::option::weighted(0.9, "(/topics/)?[a-zA-Z0-9_:-]{1,20}");
    (to, prop::collection::btree_map(key, json_value(), 0..5)).prop_map(|(to, fields)| {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        if let Some(to) = to {
            object.insert("to".into(), to.into());
        }
        Value::Object(object)
    })
}

proptest! {
    // About one generated object in six validates; check a few hundred of those.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn from_json_never_panics(s in any::<String>()) {
        let _ = Message::from_json(&s);
    }

    #[test]
    fn from_json_never_panics_on_json_like_text(s in "[{}\\[\\]\":,.0-9a-z_ -]{0,60}") {
        let _ = Message::from_json(&s);
    }

    #[test]
    fn the_stanza_writer_matches_serde(v in message_object()) {
        if let Ok(m) = Message::from_json_value(v) {
            prop_assert_eq!(stanza(&m), serde_stanza(&m));
        }
    }

    #[test]
    fn the_stanza_writer_matches_serde_for_any_text(
        to in "[a-zA-Z0-9_:-]{1,20}",
        data in prop::collection::btree_map(any::<String>(), any::<String>(), 0..4),
        flags in any::<[bool; 5]>(),
        ttl in prop::option::of(0..=MAX_TTL),
        priority in prop::option::of(prop_oneof![Just(Priority::Normal), Just(Priority::High)]),
        title in prop::option::of(any::<String>()),
    ) {
        let mut b = Message::to(to)
            .content_available(flags[0])
            .mutable_content(flags[1])
            .delay_while_idle(flags[2])
            .delivery_receipt_requested(flags[3])
            .dry_run(flags[4])
            .data_map(data.into_iter().map(|(k, v)| (k, Value::from(v))).collect());
        if let Some(ttl) = ttl {
            b = b.time_to_live(ttl);
        }
        if let Some(priority) = priority {
            b = b.priority(priority).collapse_key("k&<\"\u{1}");
        }
        if let Some(title) = title {
            b = b.notification(Notification { title: Some(title), ..Notification::default() });
        }
        if let Ok(m) = b.build() {
            prop_assert_eq!(stanza(&m), serde_stanza(&m));
        }
    }

    #[test]
    fn reading_directly_agrees_with_reading_a_value(mut v in message_object()) {
        // A fixed id, so that both readings cannot differ by a generated one.
        if let Value::Object(fields) = &mut v {
            fields.entry("message_id").or_insert_with(|| "m-1".into());
        }
        let line = v.to_string();
        let via_value = Message::from_json_value(v);
        if let Some(direct) = read_direct(&line) {
            prop_assert_eq!(Ok(direct), via_value);
        }
    }

    #[test]
    fn whatever_validates_round_trips(v in message_object()) {
        if let Ok(m) = Message::from_json_value(v) {
            let json = m.to_json();
            let again = Message::from_json(&json);
            prop_assert_eq!(again.as_ref().map(Message::to_json), Ok(json));
            prop_assert_eq!(again, Ok(m));
        }
    }
}

/// What [`Message::write_stanza`] writes, or its error.
fn stanza(m: &Message) -> Result<String, String> {
    let mut out = Vec::new();
    m.write_stanza(&mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).expect("UTF-8"))
}

/// The stanza of `m` serialized by serde, the reference.
fn serde_stanza(m: &Message) -> Result<String, String> {
    let mut out = Vec::new();
    crate::wire::write::gcm_message_of(&mut out, m.message_id(), m).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).expect("UTF-8"))
}

#[test]
fn common_lines_are_read_directly_and_the_rest_falls_back() {
    let line = r#"{"to":"tok","data":{"text":"hi","n":1},"time_to_live":60,"message_id":"a"}"#;
    let direct = read_direct(line).expect("read directly");
    assert_eq!(Ok(&direct), Message::from_json(line).as_ref());
    assert_eq!(direct.data().map(Map::len), Some(2));
    for line in [
        r#"{"to":"a","to":"b"}"#,
        r#"{"to":"a","subscription":{}}"#,
        r#"{"to":"a","time_to_live":-1}"#,
        r#"{"data":{}}"#,
        r#"["to"]"#,
        r#"{"to":"a"} x"#,
    ] {
        assert!(read_direct(line).is_none(), "{line}");
    }
    // The fallback keeps today's answers: the last of repeated members wins.
    let repeated = Message::from_json(r#"{"to":"a","to":"b"}"#).expect("valid");
    assert_eq!(repeated.target_str(), "b");
}
