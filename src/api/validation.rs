//! An HAPolicy checked offline as the API server checks it on create: the CRD's OpenAPI schema
//! (types, enums, bounds, lengths, list sizes, required and undeclared fields), then, on the
//! defaulted object, the CRD's CEL rules (`x-kubernetes-validations`). Messages are worded as the
//! API server words them (`spec.spread[0].maxSkew: Invalid value: 0: spec.spread[0].maxSkew in
//! body should be greater than or equal to 1`), so a file refused here is refused there alike.
//!
//! Pure: the schema is the one `skewguard crd` prints, generated from the types in this module's
//! parent; nothing is read from a cluster.

use serde_json::{Map, Value};

/// One reason the API server would refuse the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Where, as the API server writes it (`spec.spread[0].maxSkew`; empty: the whole object).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The HAPolicy CRD's schema (`openAPIV3Schema` of its one version), as JSON.
pub fn schema() -> Value {
    crate::api::crd()
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Every violation of the HAPolicy `object` (a whole object as a file holds it): the schema's
/// first, and the CEL rules only when the schema holds (as the API server, which evaluates rules
/// on a valid, defaulted object). `status` is not checked: a create ignores it.
pub fn validate(object: &Value) -> Result<(), Vec<Violation>> {
    let schema = schema();
    let mut violations = Vec::new();
    if object["metadata"]["name"]
        .as_str()
        .is_none_or(|n| n.is_empty())
    {
        violations.push(Violation {
            path: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        });
    }
    let mut without_status = object.clone();
    if let Some(map) = without_status.as_object_mut() {
        map.remove("status");
    }
    check(&schema, &without_status, "", &mut violations);
    if !violations.is_empty() {
        return Err(violations);
    }
    kube::core::cel::Validator::new()
        .validate(&schema, &without_status, None)
        .map_err(|errors| {
            errors
                .as_slice()
                .iter()
                .map(|e| Violation {
                    path: e.field_path.clone(),
                    message: e.message.clone(),
                })
                .collect()
        })
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// How the API server prints a value in a message: strings quoted, the rest as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(schema: &Map<String, Value>, value: &Value) -> bool {
    let actual = type_name(value);
    match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("number") => matches!(actual, "number" | "integer"),
        Some(wanted) => wanted == actual,
    }
}

/// Checks `value` at `path` against `schema`, pushing what the API server would refuse.
fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    // A null where the field is not nullable is dropped by the API server, as if absent.
    if value.is_null() {
        return;
    }
    let mut invalid = |message: String| {
        out.push(Violation {
            path: path.to_string(),
            message,
        })
    };
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    let fits = has_type(schema, value)
        || (int_or_string && matches!(type_name(value), "integer" | "string"));
    if !fits {
        let wanted = schema.get("type").and_then(Value::as_str).unwrap_or("?");
        invalid(format!(
            "Invalid value: \"{}\": {path} in body must be of type {wanted}: \"{}\"",
            type_name(value),
            type_name(value)
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        invalid(format!(
            "Unsupported value: {}: supported values: {}",
            shown(value),
            list.join(", ")
        ));
    }
    if let Some(n) = value.as_f64() {
        let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
        if let Some(min) = bound("minimum")
            && n < min
        {
            invalid(format!(
                "Invalid value: {}: {path} in body should be greater than or equal to {min}",
                shown(value)
            ));
        }
        if let Some(max) = bound("maximum")
            && n > max
        {
            invalid(format!(
                "Invalid value: {}: {path} in body should be less than or equal to {max}",
                shown(value)
            ));
        }
    }
    if let Some(text) = value.as_str() {
        let chars = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && chars > max
        {
            invalid(format!("Too long: may not be more than {max} bytes"));
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && chars < min
        {
            invalid(format!(
                "Invalid value: {}: {path} in body should be at least {min} chars long",
                shown(value)
            ));
        }
    }
    if let Some(items) = value.as_array() {
        check_list(schema, items, path, out);
    }
    if let Some(fields) = value.as_object() {
        check_object(schema, fields, path, out);
    }
}

fn check_list(schema: &Map<String, Value>, items: &[Value], path: &str, out: &mut Vec<Violation>) {
    let len = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        out.push(Violation {
            path: path.to_string(),
            message: format!("Too many: {len}: must have at most {max} items"),
        });
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        out.push(Violation {
            path: path.to_string(),
            message: format!(
                "Invalid value: {len}: {path} in body should have at least {min} items"
            ),
        });
    }
    // list-type set and map: an item (or an item's keys) once.
    let keys: Option<Vec<&str>> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str)
    {
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect()),
        Some("set") => Some(Vec::new()),
        _ => None,
    };
    if let Some(keys) = keys {
        let identity = |item: &Value| -> Value {
            if keys.is_empty() {
                item.clone()
            } else {
                Value::Object(
                    keys.iter()
                        .map(|k| (k.to_string(), item[*k].clone()))
                        .collect(),
                )
            }
        };
        for (i, item) in items.iter().enumerate() {
            let id = identity(item);
            if items[..i].iter().any(|earlier| identity(earlier) == id) {
                out.push(Violation {
                    path: format!("{path}[{i}]"),
                    message: format!("Duplicate value: {id}"),
                });
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), out);
        }
    }
}

fn check_object(
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) {
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if fields.get(name).is_none_or(Value::is_null) {
            out.push(Violation {
                path: child(path, name),
                message: "Required value".into(),
            });
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    for (name, value) in fields {
        // The type's own fields, which the CRD's schema leaves to the API server.
        if path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match (properties.and_then(|p| p.get(name)), additional) {
            (Some(field_schema), _) => check(field_schema, value, &child(path, name), out),
            (None, Some(additional)) if additional.is_object() => {
                check(additional, value, &child(path, name), out)
            }
            // Only declared fields are kept: the API server's strict field validation refuses
            // the rest (kubectl: `unknown field`), where the object declares its fields at all.
            (None, _) if properties.is_some() && !preserve && path != "metadata" => {
                out.push(Violation {
                    path: child(path, name),
                    message: format!("unknown field \"{}\"", child(path, name)),
                })
            }
            (None, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Value {
        json!({
            "apiVersion": "skewguard.dev/v1alpha1",
            "kind": "HAPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": spec,
        })
    }

    fn messages(object: &Value) -> Vec<String> {
        validate(object)
            .err()
            .unwrap_or_default()
            .iter()
            .map(Violation::to_string)
            .collect()
    }

    #[test]
    fn a_minimal_policy_is_valid() {
        let p = policy(
            json!({"selector": {}, "spread": [{"topologyKey": "topology.kubernetes.io/zone"}]}),
        );
        assert_eq!(validate(&p), Ok(()));
    }

    #[test]
    fn max_skew_zero_is_refused_with_the_schemas_minimum() {
        let p = policy(json!({"selector": {}, "spread": [
            {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 0}
        ]}));
        assert_eq!(
            messages(&p),
            [
                "spec.spread[0].maxSkew: Invalid value: 0: spec.spread[0].maxSkew in body should be greater than or equal to 1"
            ]
        );
    }

    #[test]
    fn types_enums_sizes_required_and_unknown_fields_are_refused() {
        let p = policy(json!({"selector": {}, "spred": [], "spread": [
            {"topologyKey": "zone", "maxSkew": "one", "whenUnsatisfiable": "Sometimes"}
        ]}));
        let got = messages(&p);
        assert!(
            got.contains(&"spec.spred: unknown field \"spec.spred\"".to_string()),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|m| m.starts_with("spec.spread[0].maxSkew: Invalid value: \"string\"")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|m| m
                .starts_with("spec.spread[0].whenUnsatisfiable: Unsupported value: \"Sometimes\"")),
            "{got:?}"
        );
        let empty = policy(json!({"selector": {}, "spread": []}));
        assert_eq!(
            messages(&empty),
            ["spec.spread: Invalid value: 0: spec.spread in body should have at least 1 items"]
        );
        let nine: Vec<Value> = (0..9)
            .map(|i| json!({"topologyKey": format!("k{i}")}))
            .collect();
        assert_eq!(
            messages(&policy(json!({"selector": {}, "spread": nine}))),
            ["spec.spread: Too many: 9: must have at most 8 items"]
        );
        let unnamed = json!({"apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
            "metadata": {}, "spec": {"selector": {}, "spread": [{"topologyKey": "k"}]}});
        assert_eq!(
            messages(&unnamed),
            ["metadata.name: Required value: name or generateName is required"]
        );
    }

    #[test]
    fn the_cel_rules_are_applied_after_defaulting() {
        // whenUnsatisfiable defaults to ScheduleAnyway: minDomains then breaks the CEL rule.
        let p = policy(json!({"selector": {}, "spread": [
            {"topologyKey": "topology.kubernetes.io/zone", "minDomains": 3}
        ]}));
        let got = messages(&p);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("minDomains is only allowed with whenUnsatisfiable: DoNotSchedule"),
            "{got:?}"
        );
        let twice = policy(json!({"selector": {}, "spread": [
            {"topologyKey": "k", "maxSkew": 1}, {"topologyKey": "k", "maxSkew": 2}
        ]}));
        let got = messages(&twice);
        assert!(
            got.iter()
                .any(|m| m.contains("unique (topologyKey, whenUnsatisfiable) pairs")),
            "{got:?}"
        );
        let fine = policy(json!({"selector": {}, "spread": [
            {"topologyKey": "topology.kubernetes.io/zone", "minDomains": 3, "whenUnsatisfiable": "DoNotSchedule"}
        ]}));
        assert_eq!(validate(&fine), Ok(()));
    }
}
