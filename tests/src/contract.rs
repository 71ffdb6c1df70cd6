// SPDX-License-Identifier: GPL-2.0-only
//! The response shapes of `shared/spec/csm-contract.md`, read from the table itself
//! (not restated here), and a checker that says where a JSON value departs from one.
//!
//! The table's cells are prose with a small grammar: `name: type` fields separated by
//! commas, `{…}` objects, `[…]` arrays, `bare array of {…}`, a parenthetical note
//! after a type, and prose after the first top-level `;`. A field without a type must
//! be present; `name?` may be absent; `{name: T}` and `{check: T}` are maps keyed by
//! whatever names there are; `name[24]` is an array of exactly 24.

use std::path::PathBuf;

use serde_json::Value;

/// An expected JSON shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Any,
    Str,
    Int,
    Number,
    Bool,
    Object,
    BoolOrObject,
    /// A string of this literal pattern, `H` a digit ("HH:00").
    Pattern(String),
    Array(Box<Shape>, Option<usize>),
    /// A map whose keys are data (`{name: bool}`), every value of one shape.
    Map(Box<Shape>),
    Fields(Vec<Field>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub optional: bool,
    pub shape: Shape,
}

/// One row's route and the shape of its response (for the findings row: of each
/// finding, in the array and in every SSE `data:` item).
#[derive(Clone, Debug)]
pub struct RouteShape {
    pub method: String,
    pub path: String,
    pub shape: Shape,
    /// The row's whole cell, for messages.
    pub cell: String,
}

pub fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/csm-contract.md")
}

/// The "Response shapes" table of the contract.
pub fn response_shapes(text: &str) -> Result<Vec<RouteShape>, String> {
    let start = text
        .find("## Response shapes")
        .ok_or("no '## Response shapes' section")?;
    let section = &text[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut out = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        let [route, cell] = cells[..] else {
            return Err(format!("a row without two cells: {line}"));
        };
        // `/stats/timeline` after `GET /api/v1/stats/trend` shares its prefix.
        let routes: Vec<(String, String)> = route
            .split('`')
            .skip(1)
            .step_by(2)
            .filter_map(|r| {
                let (m, p) = r.split_once(' ').unwrap_or(("GET", r));
                if p.starts_with("/api/") || p == "/metrics" {
                    Some((m.to_string(), p.to_string()))
                } else if p.starts_with('/') {
                    Some((m.to_string(), format!("/api/v1{p}")))
                } else {
                    None
                }
            })
            .collect();
        let clean = cell.replace("**", "");
        let shapes = if route.contains("/metrics") {
            vec![Shape::Str]
        } else {
            parse_cell(&clean).map_err(|e| format!("{route}: {e}"))?
        };
        for (i, (m, p)) in routes.iter().enumerate() {
            let shape = shapes
                .get(i)
                .or(shapes.first())
                .cloned()
                .ok_or_else(|| format!("{route}: no shape"))?;
            out.push(RouteShape {
                method: m.clone(),
                path: p.clone(),
                shape,
                cell: cell.to_string(),
            });
        }
    }
    Ok(out)
}

/// A cell's shapes (one per route in the row: the trend/timeline row has two).
fn parse_cell(cell: &str) -> Result<Vec<Shape>, String> {
    let cell = top_level_split(cell, ';')[0].trim();
    let cell = cell.strip_prefix("200 ").unwrap_or(cell);
    if let Some(rest) = cell.strip_prefix("bare arrays:") {
        // `[{date, critical, …}], [{hour: "HH:00", …}]`: the `…` of a later array
        // stands for the first one's fields after its key.
        let parts = top_level_split(rest, ',');
        let first = value(parts[0].trim())?;
        let mut out = vec![first.clone()];
        for p in &parts[1..] {
            let mut v = value(p.trim())?;
            if let (Shape::Array(item, _), Shape::Array(first_item, _)) = (&mut v, &first) {
                if let (Shape::Fields(f), Shape::Fields(ff), true) =
                    (item.as_mut(), first_item.as_ref(), p.contains('…'))
                {
                    f.extend(ff.iter().skip(1).cloned());
                }
            }
            out.push(v);
        }
        return Ok(out);
    }
    if let Some(rest) = cell.strip_prefix("bare array of ") {
        return Ok(vec![Shape::Array(Box::new(value(rest.trim())?), None)]);
    }
    if cell.starts_with('[') || cell.starts_with('{') {
        // Prose may follow the value: `[{…}], default limit 25`.
        return Ok(vec![value(top_level_split(cell, ',')[0])?]);
    }
    Ok(vec![fields(cell)?])
}

/// Split at `sep` outside brackets, braces, parentheses and quotes.
fn top_level_split(s: &str, sep: char) -> Vec<&str> {
    let (mut depth, mut quoted, mut start, mut out) = (0i32, false, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '[' | '(' if !quoted => depth += 1,
            '}' | ']' | ')' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn value(s: &str) -> Result<Shape, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let f = fields(inner)?;
        // `{name: bool}`, `{check: int}`: keys are data.
        if let Shape::Fields(v) = &f {
            if let [one] = &v[..] {
                if matches!(one.name.as_str(), "name" | "check") && one.shape != Shape::Any {
                    return Ok(Shape::Map(Box::new(one.shape.clone())));
                }
            }
        }
        return Ok(f);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let inner = inner.trim();
        // `[finding + account, ip]`: an item described in words.
        let item = if inner.contains(" + ") {
            Shape::Object
        } else {
            value(inner)?
        };
        return Ok(Shape::Array(Box::new(item), None));
    }
    // A type, maybe followed by a parenthetical note or an example.
    let ty = s.split(" (").next().unwrap_or(s).trim();
    Ok(match ty {
        "str" | "RFC 3339" => Shape::Str,
        "int" => Shape::Int,
        "number" => Shape::Number,
        "bool" => Shape::Bool,
        "obj" => Shape::Object,
        "bool/obj" => Shape::BoolOrObject,
        t if t.starts_with('"') && t.ends_with('"') && t.len() >= 2 => {
            Shape::Pattern(t[1..t.len() - 1].to_string())
        }
        t => return Err(format!("unknown type {t:?}")),
    })
}

fn fields(s: &str) -> Result<Shape, String> {
    let mut out = Vec::new();
    for part in top_level_split(s, ',') {
        let part = part.trim();
        if part.is_empty() || part == "…" || part == "..." {
            continue;
        }
        let (name, shape) = match part.split_once(':') {
            // A note in parentheses is not a type: `expires_at ("" if permanent)`.
            Some((n, t)) if !n.contains('(') => (n.trim(), value(t)?),
            _ => (part.split(" (").next().unwrap_or(part).trim(), Shape::Any),
        };
        let (name, optional) = match name.strip_suffix('?') {
            Some(n) => (n, true),
            None => (name, false),
        };
        let (name, shape) = match name.split_once('[') {
            Some((n, len)) => {
                let len = len
                    .trim_end_matches(']')
                    .parse::<usize>()
                    .map_err(|e| format!("{name}: {e}"))?;
                (n, Shape::Array(Box::new(shape), Some(len)))
            }
            None => (name, shape),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("not a field name: {name:?} in {s:?}"));
        }
        out.push(Field {
            name: name.to_string(),
            optional,
            shape,
        });
    }
    Ok(Shape::Fields(out))
}

/// Where `v` departs from `shape`, as `path: what` lines (empty when it conforms).
pub fn check(shape: &Shape, v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    walk(shape, v, "$", &mut errs);
    errs
}

fn walk(shape: &Shape, v: &Value, at: &str, errs: &mut Vec<String>) {
    let mut bad = |want: &str| errs.push(format!("{at}: want {want}, got {v}"));
    match shape {
        Shape::Any => {}
        Shape::Str => {
            if !v.is_string() {
                bad("a string")
            }
        }
        Shape::Int => {
            if !(v.is_i64() || v.is_u64()) {
                bad("an integer")
            }
        }
        Shape::Number => {
            if !v.is_number() {
                bad("a number")
            }
        }
        Shape::Bool => {
            if !v.is_boolean() {
                bad("a bool")
            }
        }
        Shape::Object => {
            if !v.is_object() {
                bad("an object")
            }
        }
        Shape::BoolOrObject => {
            if !v.is_boolean() && !v.is_object() {
                bad("a bool or an object")
            }
        }
        Shape::Pattern(p) => {
            let ok = v.as_str().is_some_and(|s| {
                s.len() == p.len()
                    && s.chars().zip(p.chars()).all(|(c, q)| match q {
                        'H' => c.is_ascii_digit(),
                        q => c == q,
                    })
            });
            if !ok {
                bad(&format!("a string like {p:?}"))
            }
        }
        Shape::Array(item, len) => {
            let Some(a) = v.as_array() else {
                return bad("an array");
            };
            if let Some(n) = len {
                if a.len() != *n {
                    bad(&format!("{n} items"));
                }
            }
            for (i, x) in a.iter().enumerate() {
                walk(item, x, &format!("{at}[{i}]"), errs);
            }
        }
        Shape::Map(item) => {
            let Some(o) = v.as_object() else {
                return bad("an object");
            };
            for (k, x) in o {
                walk(item, x, &format!("{at}.{k}"), errs);
            }
        }
        Shape::Fields(fields) => {
            let Some(o) = v.as_object() else {
                return bad("an object");
            };
            for f in fields {
                match o.get(&f.name) {
                    Some(x) => walk(&f.shape, x, &format!("{at}.{}", f.name), errs),
                    None if f.optional => {}
                    None => errs.push(format!("{at}: no field {:?}", f.name)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contract_table_parses_into_a_shape_per_route() {
        let text = std::fs::read_to_string(spec_path()).expect("csm-contract.md beside the repo");
        let shapes = response_shapes(&text).expect("parses");
        let routes: Vec<String> = shapes
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        for want in [
            "GET /api/v1/status",
            "GET /api/v1/findings",
            "GET /api/v1/stats/trend",
            "GET /api/v1/stats/timeline",
            "POST /api/v1/unblock-bulk",
            "GET /metrics",
        ] {
            assert!(routes.iter().any(|r| r == want), "{want} in {routes:#?}");
        }
        assert_eq!(shapes.len(), 21, "{routes:#?}");
        let status = &shapes[0].shape;
        let Shape::Fields(f) = status else {
            panic!("{status:?}")
        };
        let watchers = f.iter().find(|f| f.name == "watchers").expect("watchers");
        assert_eq!(watchers.shape, Shape::Map(Box::new(Shape::Bool)));
        let timeline = shapes
            .iter()
            .find(|r| r.path.ends_with("/timeline"))
            .expect("timeline");
        assert!(
            !check(&timeline.shape, &json!([{"hour": "07:00"}])).is_empty(),
            "the timeline's other fields are required"
        );
    }

    #[test]
    fn the_checker_names_each_departure() {
        let s = fields("a: int, b: {x, y: bool}, c[2]: str, d?: str, e: \"HH:00\"").expect("parse");
        assert!(check(
            &s,
            &json!({"a": 1, "b": {"x": null, "y": true}, "c": ["p", "q"], "e": "07:00"})
        )
        .is_empty());
        let errs = check(
            &s,
            &json!({"a": "1", "b": {"y": 1}, "c": ["p"], "d": 3, "e": "7:00"}),
        );
        assert_eq!(errs.len(), 6, "{errs:#?}");
        assert!(
            errs.iter().any(|e| e.contains("no field \"x\"")),
            "{errs:#?}"
        );
    }
}
