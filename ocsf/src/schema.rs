//! Loading and compiling the schema's repository files into classes and objects.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{Map, Value};

/// Why a schema directory could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Whether an event must, should or may carry an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Requirement {
    Required,
    Recommended,
    Optional,
}

/// A primitive value shape, the root of every `*_t` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Primitive {
    String,
    Integer,
    Long,
    Float,
    Boolean,
    Json,
}

/// A dictionary data type (`ip_t`, `port_t`, `timestamp_t`...) with its constraints.
#[derive(Debug, Clone)]
pub(crate) struct DataType {
    pub(crate) primitive: Primitive,
    pub(crate) regex: Option<Regex>,
    pub(crate) max_len: Option<usize>,
    pub(crate) range: Option<(f64, f64)>,
}

/// One attribute of a compiled class or object.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    /// A data type (`string_t`) or an object name (`process`).
    pub type_name: String,
    pub is_array: bool,
    pub requirement: Requirement,
    /// Allowed values (an integer's decimal string or a string) with their captions.
    pub enum_values: Option<BTreeMap<String, String>>,
    /// The attribute naming this one's enum caption (`severity` for `severity_id`).
    pub sibling: Option<String>,
    /// The profile that adds this attribute; it belongs to an event only when the event applies it.
    pub profile: Option<String>,
    pub deprecated: Option<String>,
}

/// A compiled object: its attributes and constraints.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: String,
    pub attributes: BTreeMap<String, Attribute>,
    pub at_least_one: Vec<String>,
    pub just_one: Vec<String>,
}

/// A compiled event class.
#[derive(Debug, Clone)]
pub struct ClassDef {
    pub name: String,
    pub caption: String,
    /// `category_uid * 1000 + uid`: 2004 for Detection Finding.
    pub class_uid: i64,
    pub category_uid: i64,
    pub body: ObjectDef,
}

/// The compiled schema.
#[derive(Debug)]
pub struct Schema {
    pub version: String,
    pub(crate) types: BTreeMap<String, DataType>,
    pub(crate) objects: BTreeMap<String, ObjectDef>,
    classes: BTreeMap<i64, ClassDef>,
}

fn read_json(path: &Path) -> Result<Value, SchemaError> {
    let text = fs::read_to_string(path).map_err(|source| SchemaError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SchemaError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Every `*.json` file under `dir`, recursively, in a stable order.
fn json_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), SchemaError> {
    let entries = fs::read_dir(dir).map_err(|source| SchemaError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            json_files(&path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            found.push(path);
        }
    }
    Ok(())
}

/// `over` merged into `base`: objects key by key, anything else replaced (a `null` included, which
/// is how a class says `"profile": null`, "this attribute is not the profile's here").
fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The raw files, before compiling.
struct Sources {
    root: PathBuf,
    dictionary: Map<String, Value>,
    objects: BTreeMap<String, Value>,
    events: BTreeMap<String, Value>,
}

impl Sources {
    /// A definition's attributes with `extends` and `$include` resolved, as raw JSON, with its
    /// constraints (a definition's own replace its parent's).
    fn resolve(
        &self,
        definitions: &BTreeMap<String, Value>,
        name: &str,
        seen: &mut BTreeSet<String>,
    ) -> Result<(Map<String, Value>, Option<Value>), SchemaError> {
        if !seen.insert(name.to_owned()) {
            return Err(SchemaError::Invalid(format!("{name} extends itself")));
        }
        let definition = definitions
            .get(name)
            .ok_or_else(|| SchemaError::Invalid(format!("no definition named {name:?}")))?;
        let (mut attributes, mut constraints) = match str_field(definition, "extends") {
            Some(parent) => self.resolve(definitions, parent, seen)?,
            None => (Map::new(), None),
        };
        let own = definition
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for include in string_list(own.get("$include")) {
            let included = read_json(&self.root.join(&include))?;
            let profile = (str_field(&included, "meta") == Some("profile"))
                .then(|| str_field(&included, "name").map(str::to_owned))
                .flatten();
            for (key, attribute) in included
                .get("attributes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let mut attribute = attribute.clone();
                if let (Some(profile), Some(fields)) = (&profile, attribute.as_object_mut()) {
                    fields
                        .entry("profile")
                        .or_insert_with(|| Value::String(profile.clone()));
                }
                match attributes.get_mut(key) {
                    Some(existing) => deep_merge(existing, &attribute),
                    None => {
                        attributes.insert(key.clone(), attribute);
                    }
                }
            }
        }
        for (key, attribute) in own {
            if key == "$include" {
                continue;
            }
            match attributes.get_mut(&key) {
                Some(existing) => deep_merge(existing, &attribute),
                None => {
                    attributes.insert(key, attribute);
                }
            }
        }
        if let Some(own_constraints) = definition.get("constraints") {
            constraints = Some(own_constraints.clone());
        }
        Ok((attributes, constraints))
    }

    /// The dictionary's entry with the definition's merged over it.
    fn attribute(&self, owner: &str, name: &str, local: &Value) -> Result<Attribute, SchemaError> {
        let mut merged = self.dictionary.get(name).cloned().ok_or_else(|| {
            SchemaError::Invalid(format!("{owner}.{name} is not in the dictionary"))
        })?;
        deep_merge(&mut merged, local);
        let type_name = str_field(&merged, "type")
            .ok_or_else(|| SchemaError::Invalid(format!("{owner}.{name} has no type")))?
            .to_owned();
        let requirement = match str_field(&merged, "requirement") {
            Some("required") => Requirement::Required,
            Some("recommended") => Requirement::Recommended,
            _ => Requirement::Optional,
        };
        let enum_values = merged.get("enum").and_then(Value::as_object).map(|values| {
            values
                .iter()
                .map(|(key, entry)| {
                    (
                        key.clone(),
                        str_field(entry, "caption").unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        });
        Ok(Attribute {
            name: name.to_owned(),
            type_name,
            is_array: merged
                .get("is_array")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            requirement,
            enum_values,
            sibling: str_field(&merged, "sibling").map(str::to_owned),
            profile: str_field(&merged, "profile").map(str::to_owned),
            deprecated: merged.get("@deprecated").map(|note| {
                str_field(note, "message")
                    .unwrap_or("deprecated")
                    .to_owned()
            }),
        })
    }

    fn compile(
        &self,
        definitions: &BTreeMap<String, Value>,
        name: &str,
    ) -> Result<ObjectDef, SchemaError> {
        let (raw, constraints) = self.resolve(definitions, name, &mut BTreeSet::new())?;
        let mut attributes = BTreeMap::new();
        for (key, local) in &raw {
            attributes.insert(key.clone(), self.attribute(name, key, local)?);
        }
        let constraint = |kind: &str| string_list(constraints.as_ref().and_then(|c| c.get(kind)));
        Ok(ObjectDef {
            name: name.to_owned(),
            attributes,
            at_least_one: constraint("at_least_one"),
            just_one: constraint("just_one"),
        })
    }
}

fn data_types(dictionary: &Value) -> Result<BTreeMap<String, DataType>, SchemaError> {
    let raw = dictionary
        .pointer("/types/attributes")
        .and_then(Value::as_object)
        .ok_or_else(|| SchemaError::Invalid("dictionary.json has no types".into()))?;
    let mut types = BTreeMap::new();
    for (name, definition) in raw {
        // Follow `type` to the primitive; the constraints are the named type's own.
        let mut root = name.as_str();
        let mut hops = 0;
        while let Some(base) = raw.get(root).and_then(|entry| str_field(entry, "type")) {
            root = base;
            hops += 1;
            if hops > 8 {
                return Err(SchemaError::Invalid(format!("type {name} loops")));
            }
        }
        let primitive = match root {
            "string_t" => Primitive::String,
            "integer_t" => Primitive::Integer,
            "long_t" => Primitive::Long,
            "float_t" => Primitive::Float,
            "boolean_t" => Primitive::Boolean,
            "json_t" => Primitive::Json,
            other => {
                return Err(SchemaError::Invalid(format!(
                    "type {name} rests on {other}, not a primitive"
                )));
            }
        };
        let regex = match str_field(definition, "regex") {
            Some(pattern) => Some(Regex::new(pattern).map_err(|error| {
                SchemaError::Invalid(format!("type {name}'s regex does not compile: {error}"))
            })?),
            None => None,
        };
        let range = definition
            .get("range")
            .and_then(Value::as_array)
            .and_then(|bounds| Some((bounds.first()?.as_f64()?, bounds.get(1)?.as_f64()?)));
        types.insert(
            name.clone(),
            DataType {
                primitive,
                regex,
                max_len: definition
                    .get("max_len")
                    .and_then(Value::as_u64)
                    .and_then(|len| usize::try_from(len).ok()),
                range,
            },
        );
    }
    Ok(types)
}

/// The observable `type_id` values: every data type, dictionary attribute, object and object
/// attribute that names an `observable` number, with Unknown and Other.
fn observable_types(sources: &Sources, dictionary: &Value) -> BTreeMap<String, String> {
    let mut found = BTreeMap::from([
        ("0".to_owned(), "Unknown".to_owned()),
        ("99".to_owned(), "Other".to_owned()),
    ]);
    let mut add = |definition: &Value, caption: String| {
        if let Some(number) = definition.get("observable").and_then(Value::as_i64) {
            found.insert(number.to_string(), caption);
        }
    };
    for (_, definition) in dictionary
        .pointer("/types/attributes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        add(
            definition,
            str_field(definition, "caption").unwrap_or_default().into(),
        );
    }
    for (_, definition) in &sources.dictionary {
        add(
            definition,
            str_field(definition, "caption").unwrap_or_default().into(),
        );
    }
    for object in sources.objects.values() {
        let caption = str_field(object, "caption").unwrap_or_default().to_owned();
        add(object, caption.clone());
        for (_, attribute) in object
            .get("attributes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            add(attribute, caption.clone());
        }
    }
    found
}

impl Schema {
    /// Compiles the schema in `dir` (a checkout or release of github.com/ocsf/ocsf-schema): every
    /// object and every event class. Extensions are not applied.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let dictionary = read_json(&dir.join("dictionary.json"))?;
        let categories = read_json(&dir.join("categories.json"))?;
        let version = str_field(&read_json(&dir.join("version.json"))?, "version")
            .unwrap_or_default()
            .to_owned();
        let by_name = |folder: &str| -> Result<BTreeMap<String, Value>, SchemaError> {
            let mut files = Vec::new();
            json_files(&dir.join(folder), &mut files)?;
            let mut definitions = BTreeMap::new();
            for file in files {
                let definition = read_json(&file)?;
                if let Some(name) = str_field(&definition, "name") {
                    definitions.insert(name.to_owned(), definition);
                }
            }
            Ok(definitions)
        };
        let sources = Sources {
            root: dir.to_owned(),
            dictionary: dictionary
                .get("attributes")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| SchemaError::Invalid("dictionary.json has no attributes".into()))?,
            objects: by_name("objects")?,
            events: by_name("events")?,
        };
        let types = data_types(&dictionary)?;
        let observable_types = observable_types(&sources, &dictionary);

        let mut objects = BTreeMap::new();
        for name in sources.objects.keys() {
            let mut object = sources.compile(&sources.objects, name)?;
            if name == "observable"
                && let Some(type_id) = object.attributes.get_mut("type_id")
            {
                type_id.enum_values = Some(observable_types.clone());
            }
            objects.insert(name.clone(), object);
        }

        let mut classes = BTreeMap::new();
        for (name, definition) in &sources.events {
            // Only concrete classes have a uid; `base_event` is uid 0 of category "other".
            let Some(uid) = definition.get("uid").and_then(Value::as_i64) else {
                continue;
            };
            let mut body = sources.compile(&sources.events, name)?;
            // The category is the class's own or its parent's.
            let mut category_name = str_field(definition, "category").map(str::to_owned);
            let mut parent = str_field(definition, "extends").map(str::to_owned);
            while category_name.is_none()
                && let Some(name) = parent.take()
            {
                let definition = sources.events.get(&name);
                category_name = definition
                    .and_then(|d| str_field(d, "category"))
                    .map(str::to_owned);
                parent = definition
                    .and_then(|d| str_field(d, "extends"))
                    .map(str::to_owned);
            }
            let category = category_name
                .as_deref()
                .and_then(|category| categories.pointer(&format!("/attributes/{category}")));
            let category_uid = category
                .and_then(|category| category.get("uid"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let category_caption = category
                .and_then(|category| str_field(category, "caption"))
                .unwrap_or_default()
                .to_owned();
            let class_uid = category_uid * 1000 + uid;
            let caption = str_field(definition, "caption")
                .unwrap_or_default()
                .to_owned();
            let set_enum = |body: &mut ObjectDef, attribute: &str, values: BTreeMap<_, _>| {
                if let Some(attribute) = body.attributes.get_mut(attribute) {
                    attribute.enum_values = Some(values);
                }
            };
            let activities = body
                .attributes
                .get("activity_id")
                .and_then(|activity| activity.enum_values.clone())
                .unwrap_or_default();
            let type_uids = activities
                .iter()
                .filter_map(|(id, activity)| {
                    let id: i64 = id.parse().ok()?;
                    Some((
                        (class_uid * 100 + id).to_string(),
                        format!("{caption}: {activity}"),
                    ))
                })
                .collect();
            set_enum(
                &mut body,
                "class_uid",
                BTreeMap::from([(class_uid.to_string(), caption.clone())]),
            );
            set_enum(
                &mut body,
                "category_uid",
                BTreeMap::from([(category_uid.to_string(), category_caption)]),
            );
            set_enum(&mut body, "type_uid", type_uids);
            classes.insert(
                class_uid,
                ClassDef {
                    name: name.clone(),
                    caption,
                    class_uid,
                    category_uid,
                    body,
                },
            );
        }
        let schema = Self {
            version,
            types,
            objects,
            classes,
        };
        schema.check_references()?;
        Ok(schema)
    }

    /// Every attribute's type is a data type or an object: a compiler that lost one would
    /// otherwise wave through whatever an event puts there.
    fn check_references(&self) -> Result<(), SchemaError> {
        let bodies = self
            .objects
            .values()
            .chain(self.classes.values().map(|class| &class.body));
        for body in bodies {
            for attribute in body.attributes.values() {
                if !self.types.contains_key(&attribute.type_name)
                    && !self.objects.contains_key(&attribute.type_name)
                {
                    return Err(SchemaError::Invalid(format!(
                        "{}.{} has type {}, which is neither a data type nor an object",
                        body.name, attribute.name, attribute.type_name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The class with this `class_uid` (2004: Detection Finding).
    pub fn class(&self, class_uid: i64) -> Option<&ClassDef> {
        self.classes.get(&class_uid)
    }

    /// A compiled object by name (`process`, `finding_info`).
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects.get(name)
    }

    /// How many classes and objects were compiled.
    pub fn sizes(&self) -> (usize, usize) {
        (self.classes.len(), self.objects.len())
    }
}
