//! What a generic secret looks like: a plain string, replaced whole, or a JSON
//! object whose listed fields are regenerated and whose other fields are kept.
//! Which one is for the secret's settings to say (`rotor:format`,
//! `rotor:fields`); a value that starts like JSON but is no JSON object is
//! refused, never replaced whole, which would drop every field.

use rotor_core::{Error, ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::settings::names::{FIELDS_TAG, FIELDS_VAR, FORMAT_TAG};
use crate::settings::{Format, Settings};

/// The shape of a stored value, as far as rotation is concerned.
pub(crate) enum Shape {
    /// Not JSON: replaced whole.
    Plain,
    /// A JSON object whose listed fields are regenerated.
    Json(Map<String, Value>, Vec<String>),
}

impl Shape {
    /// The shape of the value of secret `secret` under `label`, as
    /// `settings` rotate it, or [`Error::InvalidSecretValue`] naming both.
    pub(crate) fn read(
        secret: &str,
        label: &str,
        value: &SecretString,
        settings: &Settings,
    ) -> Result<Shape, Error> {
        Shape::of(value.expose_secret(), settings).map_err(|problem| Error::InvalidSecretValue {
            secret: secret.to_owned(),
            label: label.to_owned(),
            problem,
        })
    }

    /// The shape of `text`, or why it has none that `settings` rotate: a
    /// predicate that names the field at fault and the fix, never the value.
    fn of(text: &str, settings: &Settings) -> Result<Shape, String> {
        if settings.format == Format::Plain {
            return Ok(Shape::Plain);
        }
        // Why the value is no JSON object, when it is not; a plain string is
        // one only where the settings allow it.
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(other) => Err(format!(
                "is not a JSON object (it is {})",
                json_kind(&other)
            )),
            Err(e) => Err(format!("is not a JSON object ({})", json_problem(&e))),
        };
        let (object, fields) = match (object, &settings.fields) {
            (Ok(object), None) => (object, vec!["password".to_owned()]),
            (Ok(object), Some(fields)) => (object, fields.clone()),
            (Err(why), Some(fields)) => {
                let fields = fields.join(", ");
                return Err(format!(
                    "{why}, but the settings name fields to regenerate ({fields}); store a JSON object, or remove the {FIELDS_TAG} tag / {FIELDS_VAR} to replace the whole value"
                ));
            }
            (Err(why), None) if settings.format == Format::Json => {
                return Err(format!(
                    "{why}, but the secret's {FORMAT_TAG} tag says json; store a JSON object, or remove the tag"
                ));
            }
            (Err(why), None) if starts_like_json(text) => {
                return Err(format!(
                    "starts with {{ or [ but {why}; rotor does not replace it whole, which would drop every field. Fix the value (put-secret-value), or tag the secret {FORMAT_TAG}=plain if it is a plain string"
                ));
            }
            (Err(_), None) => return Ok(Shape::Plain),
        };
        for field in &fields {
            match object.get(field) {
                Some(Value::String(_)) => {}
                Some(_) => {
                    return Err(format!(
                        "has a field {field:?} that is not a string; rotor regenerates string fields only"
                    ));
                }
                None => {
                    return Err(format!(
                        "has no field {field:?} to regenerate; add it to the secret, or list the fields to regenerate in the {FIELDS_TAG} tag"
                    ));
                }
            }
        }
        Ok(Shape::Json(object, fields))
    }
}

/// Whether a value reads as JSON to a person: its first character, after
/// white space (and a byte order mark), opens an object or an array.
pub(crate) fn starts_like_json(text: &str) -> bool {
    text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .starts_with(['{', '['])
}

/// Where and how a text fails to parse as JSON: a position, never the text
/// (serde_json's own message may quote what it found).
fn json_problem(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Eof => "the JSON ends too early",
        _ => "a JSON syntax error",
    };
    format!("{what} at line {}, column {}", error.line(), error.column())
}

/// What a JSON value is, in words, for a value that is JSON but no object.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a JSON array",
        Value::String(_) => "a JSON string",
        Value::Number(_) => "a JSON number",
        Value::Bool(_) => "a JSON boolean",
        Value::Null => "JSON null",
        Value::Object(_) => "a JSON object",
    }
}
