//! Query parameters of the licensee API, validated with X's wording.
//!
//! Field and expansion names are checked for shape only: clients such as twarc send every name X
//! knows, so names we do not serve are ignored, while malformed lists are a 400.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use datapact_core::Timestamp;

use crate::problem::Problem;

/// The query string, parsed once per request.
#[derive(Debug, Default)]
pub struct QueryParams {
    values: HashMap<String, String>,
}

/// A set of requested field or expansion names.
#[derive(Debug, Default, Clone)]
pub struct Names(HashSet<String>);

impl Names {
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| Problem::invalid_request(format!("the query string is malformed: {e}")))?;
        let mut values = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if values.contains_key(&name) {
                return Err(Problem::invalid_parameter(
                    &name,
                    &value,
                    format!("The `{name}` query parameter may be given only once"),
                ));
            }
            values.insert(name, value);
        }
        Ok(QueryParams { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The union of comma-separated name lists under any of `parameters` (`tweet.fields` and its
    /// newer alias `post.fields`).
    pub fn names(&self, parameters: &[&str]) -> Result<Names, Problem> {
        let mut names = HashSet::new();
        for parameter in parameters {
            let Some(value) = self.get(parameter) else {
                continue;
            };
            for name in value.split(',') {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
                if !valid {
                    return Err(Problem::invalid_parameter(
                        parameter,
                        value,
                        format!("The `{parameter}` query parameter value [{name}] is not a field name"),
                    ));
                }
                names.insert(name.to_owned());
            }
        }
        Ok(Names(names))
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn bounded(&self, name: &str, min: usize, max: usize, default: usize) -> Result<usize, Problem> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        match value.parse::<usize>() {
            Ok(number) if (min..=max).contains(&number) => Ok(number),
            _ => Err(Problem::invalid_parameter(
                name,
                value,
                format!("The `{name}` query parameter value [{value}] is not between {min} and {max}"),
            )),
        }
    }

    pub fn id<T: FromStr>(&self, name: &str) -> Result<Option<T>, Problem> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        parse_id(name, value).map(Some)
    }

    /// A comma-separated list of 1 to `max` ids, required.
    pub fn id_list<T: FromStr>(&self, name: &str, max: usize) -> Result<Vec<T>, Problem> {
        let Some(value) = self.get(name) else {
            return Err(Problem::invalid_parameter(name, "", format!("The `{name}` query parameter can not be empty")));
        };
        let ids: Vec<&str> = value.split(',').collect();
        if ids.len() > max {
            return Err(Problem::invalid_parameter(
                name,
                value,
                format!("The `{name}` query parameter value has {} ids; at most {max} are allowed", ids.len()),
            ));
        }
        ids.into_iter().map(|id| parse_id(name, id)).collect()
    }

    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, Problem> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        Timestamp::parse_rfc3339(value).map(Some).map_err(|_| {
            Problem::invalid_parameter(
                name,
                value,
                format!("Invalid '{name}':'{value}'. '{name}' must be a timestamp in RFC 3339 format such as 2024-01-01T00:00:00Z"),
            )
        })
    }
}

impl QueryParams {
    /// `start_time` (inclusive) and `end_time` (exclusive), checked to be in order.
    pub fn time_range(&self) -> Result<(Option<Timestamp>, Option<Timestamp>), Problem> {
        let (start, end) = (self.time("start_time")?, self.time("end_time")?);
        if let (Some(start), Some(end)) = (start, end)
            && start >= end
        {
            return Err(Problem::invalid_parameter(
                "start_time",
                self.get("start_time").unwrap_or_default(),
                "`start_time` must be before `end_time`",
            ));
        }
        Ok((start, end))
    }
}

pub fn parse_id<T: FromStr>(name: &str, value: &str) -> Result<T, Problem> {
    value.parse().map_err(|_| {
        Problem::invalid_parameter(
            name,
            value,
            format!("The `{name}` value [{value}] is not valid: ids are decimal integers below 2^63"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapact_core::PostId;

    #[test]
    fn names_union_and_shape() {
        let params = QueryParams::parse(Some("tweet.fields=created_at,lang&post.fields=public_metrics")).unwrap();
        let names = params.names(&["tweet.fields", "post.fields"]).unwrap();
        assert!(names.contains("created_at") && names.contains("public_metrics") && !names.contains("geo"));
        for bad in ["tweet.fields=", "tweet.fields=a,,b", "tweet.fields=Created", "tweet.fields=a%20b"] {
            let params = QueryParams::parse(Some(bad)).unwrap();
            assert!(params.names(&["tweet.fields"]).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicates_and_bounds() {
        assert!(QueryParams::parse(Some("a=1&a=2")).is_err());
        let params = QueryParams::parse(Some("max_results=101&ids=1,2,x")).unwrap();
        assert!(params.bounded("max_results", 5, 100, 10).is_err());
        assert_eq!(params.bounded("absent", 5, 100, 10).unwrap(), 10);
        assert!(params.id_list::<PostId>("ids", 100).is_err());
        assert!(params.id_list::<PostId>("absent", 100).is_err());
    }
}
