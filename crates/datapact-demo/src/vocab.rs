//! Parser for the small template/vocabulary format in `data_en.rs` and
//! `data_fr.rs`.

/// One `# name` section: sentence templates plus named slot value lists.
pub(crate) struct Section {
    pub name: &'static str,
    pub templates: Vec<&'static str>,
    pub slots: Vec<(&'static str, Vec<&'static str>)>,
}

impl Section {
    fn slot(&self, key: &str) -> Option<&[&'static str]> {
        self.slots.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_slice())
    }
}

/// Everything one language needs to write posts, bios and names.
pub(crate) struct LangVocab {
    pub sections: Vec<Section>,
    pub common: usize,
    pub reply: usize,
    pub edit: usize,
    pub bio: usize,
    /// Topic sections in declaration order; the last one is `finance`.
    pub topics: Vec<usize>,
}

/// Sections that are not post topics.
const SPECIAL: [&str; 4] = ["common", "reply", "edit", "bio"];

impl LangVocab {
    pub(crate) fn parse(src: &'static str) -> LangVocab {
        let mut sections: Vec<Section> = Vec::new();
        for raw in src.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            if let Some(name) = line.strip_prefix("# ") {
                sections.push(Section { name: name.trim(), templates: Vec::new(), slots: Vec::new() });
                continue;
            }
            let sec = sections.last_mut().expect("vocabulary line before any section");
            if let Some(t) = line.strip_prefix("> ") {
                sec.templates.push(t);
            } else if let Some((k, v)) = line.split_once(" = ") {
                let k = k.trim();
                let vals = v.split('|').map(str::trim).filter(|s| !s.is_empty());
                match sec.slots.iter_mut().find(|(key, _)| *key == k) {
                    Some((_, list)) => list.extend(vals),
                    None => sec.slots.push((k, vals.collect())),
                }
            } else {
                panic!("bad vocabulary line: {line}");
            }
        }
        let find = |n: &str| sections.iter().position(|s| s.name == n).unwrap_or_else(|| panic!("missing section {n}"));
        let common = find("common");
        let reply = find("reply");
        let edit = find("edit");
        let bio = find("bio");
        let topics: Vec<usize> = (0..sections.len()).filter(|&i| !SPECIAL.contains(&sections[i].name)).collect();
        assert_eq!(sections[*topics.last().expect("no topics")].name, "finance", "finance must be the last topic");
        LangVocab { sections, common, reply, edit, bio, topics }
    }

    /// Number of everyday topics (all topics except the rare `finance`).
    pub(crate) fn main_topics(&self) -> usize {
        self.topics.len() - 1
    }

    /// Looks a slot up in `section`, then `common`, then any section.
    pub(crate) fn slot(&self, section: usize, key: &str) -> Option<&[&'static str]> {
        self.sections[section]
            .slot(key)
            .or_else(|| self.sections[self.common].slot(key))
            .or_else(|| self.sections.iter().find_map(|s| s.slot(key)))
    }
}
