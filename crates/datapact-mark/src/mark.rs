//! Site identity, per-site bias, per-(licensee, site) symbols and rendering.

use std::ops::Range;

use crate::channel::{Channel, Form};
use crate::detect::{DetectedSite, detect_sites, replacement};
use crate::fold::fold;
use crate::secret::Secret;

/// SipHash-1-3 of one little-endian `u64` under the 128-bit key `(k0, k1)`; equal to
/// `siphasher::sip::SipHasher13::new_with_keys(k0, k1)` fed `m.to_le_bytes()`.
#[inline(always)]
pub(crate) fn sip13_u64(k0: u64, k1: u64, m: u64) -> u64 {
    let mut v0 = k0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = k1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k1 ^ 0x7465_6462_7974_6573;
    macro_rules! round {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13);
            v1 ^= v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16);
            v3 ^= v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21);
            v3 ^= v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17);
            v1 ^= v2;
            v2 = v2.rotate_left(32);
        };
    }
    v3 ^= m;
    round!();
    v0 ^= m;
    let b: u64 = 8u64 << 56;
    v3 ^= b;
    round!();
    v0 ^= b;
    v2 ^= 0xff;
    round!();
    round!();
    round!();
    v0 ^ v1 ^ v2 ^ v3
}

/// The code at one site: its secret per-site key and its bias. Nothing is stored per
/// licensee: a licensee's symbol is a keyed PRF of its id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteCode {
    k0: u64,
    k1: u64,
    threshold: u64,
    public_symbol: bool,
}

impl SiteCode {
    /// Derives the code of the site `(channel, ordinal)` of a post from the secret, the
    /// post id and the digest of the post's folded text (Agrawal–Kiernan style: the
    /// tracer needs only the key and the data).
    pub fn derive(secret: &Secret, post_id: u64, text_digest: &[u8; 32], channel: Channel, ordinal: u32) -> Self {
        let mut h = blake3::Hasher::new_keyed(secret.key());
        h.update(b"datapact-mark site v1\0");
        h.update(&secret.version().to_le_bytes());
        h.update(&secret.max_coalition().to_le_bytes());
        h.update(&secret.cutoff_ppm().to_le_bytes());
        h.update(&post_id.to_le_bytes());
        h.update(text_digest);
        h.update(&[channel as u8]);
        h.update(&ordinal.to_le_bytes());
        let out = h.finalize();
        let b = out.as_bytes();
        let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let (k0, k1, u, v) = (word(0), word(8), word(16), word(24));
        // Bias p = sin^2(r), r uniform on [t', pi/2 - t'], t' = asin(sqrt(t)): the
        // arcsine density on [t, 1 - t].
        let t = secret.cutoff();
        let tp = t.sqrt().asin();
        let unit = (u >> 11) as f64 / (1u64 << 53) as f64;
        let r = tp + unit * (std::f64::consts::FRAC_PI_2 - 2.0 * tp);
        let p = r.sin().powi(2);
        let threshold = (p * 18_446_744_073_709_551_616.0).clamp(1.0, 18_446_744_073_709_549_568.0) as u64;
        // The public text is one more codeword drawn like a licensee's.
        let public_symbol = v < threshold;
        SiteCode { k0, k1, threshold, public_symbol }
    }

    /// The exact probability that a licensee's symbol here is 1 (`threshold / 2^64`).
    pub fn bias(&self) -> f64 {
        self.threshold as f64 / 18_446_744_073_709_551_616.0
    }

    /// The public text's symbol at this site: the public rendering is one more codeword,
    /// drawn with the same bias as a licensee's, so a coalition that uses the public text
    /// is just a coalition with one more (never accused) member.
    pub fn public_symbol(&self) -> bool {
        self.public_symbol
    }

    /// The licensee's symbol at this site. The licensee's copy shows the public form where
    /// its symbol equals [`SiteCode::public_symbol`] and the alternate form elsewhere.
    #[inline(always)]
    pub fn symbol(&self, licensee: u64) -> bool {
        sip13_u64(self.k0, self.k1, licensee) < self.threshold
    }

    #[inline(always)]
    pub(crate) fn parts(&self) -> (u64, u64, u64) {
        (self.k0, self.k1, self.threshold)
    }
}

/// A markable site of a prepared post.
#[derive(Clone, Debug)]
pub struct MarkSite {
    /// Channel.
    pub channel: Channel,
    /// Ordinal within the channel in this post.
    pub ordinal: u32,
    /// Form in the public text (shown for the public symbol).
    pub public_form: Form,
    /// Form shown for the other symbol.
    pub alternate_form: Form,
    /// The code.
    pub code: SiteCode,
    spans: Vec<Range<usize>>,
    alternate_text: Vec<String>,
}

impl MarkSite {
    /// What writing the alternate form changes in the public text: each span (a byte range
    /// of the public text) and its replacement, in text order. A quote pair has two spans.
    /// Renderers that splice pre-escaped text (the gateway) use this instead of
    /// [`PreparedPost::render`].
    pub fn edits(&self) -> impl Iterator<Item = (Range<usize>, &str)> + '_ {
        self.spans.iter().cloned().zip(self.alternate_text.iter().map(String::as_str))
    }
}

/// A post ready to be rendered for any licensee and to have leaks of it read: its public
/// text, its sites and their codes under one secret.
///
/// Preparing costs one keyed hash per site; rendering a licensee's copy costs one
/// SipHash per site.
#[derive(Clone, Debug)]
pub struct PreparedPost {
    post_id: u64,
    secret_version: u32,
    text: String,
    text_digest: [u8; 32],
    sites: Vec<MarkSite>,
    channel_site_counts: [u32; Channel::COUNT],
}

impl PreparedPost {
    /// Detects the sites of `public_text` and derives their codes.
    pub fn new(secret: &Secret, post_id: u64, public_text: &str) -> Self {
        let text_digest = *blake3::hash(fold(public_text).as_bytes()).as_bytes();
        let detected = detect_sites(public_text);
        let mut channel_site_counts = [0u32; Channel::COUNT];
        let mut sites = Vec::new();
        for d in &detected {
            channel_site_counts[d.channel.index()] += 1;
            if !secret.channels().contains(d.channel) {
                continue;
            }
            let Some(alt) = d.form.alternate() else {
                continue;
            };
            let Some(alternate_text) = replacement(public_text, d, alt) else {
                continue;
            };
            sites.push(MarkSite {
                channel: d.channel,
                ordinal: d.ordinal,
                public_form: d.form,
                alternate_form: alt,
                code: SiteCode::derive(secret, post_id, &text_digest, d.channel, d.ordinal),
                spans: d.spans.ranges(),
                alternate_text,
            });
        }
        PreparedPost {
            post_id,
            secret_version: secret.version(),
            text: public_text.to_string(),
            text_digest,
            sites,
            channel_site_counts,
        }
    }

    /// The post id.
    pub fn post_id(&self) -> u64 {
        self.post_id
    }

    /// The version of the secret it was prepared under.
    pub fn secret_version(&self) -> u32 {
        self.secret_version
    }

    /// The public text (the rendering of [`PreparedPost::public_symbols`]).
    pub fn public_text(&self) -> &str {
        &self.text
    }

    /// BLAKE3 of the folded public text (equals [`crate::post_fingerprint`]).
    pub fn text_digest(&self) -> &[u8; 32] {
        &self.text_digest
    }

    /// The markable sites (code positions), in text order.
    pub fn sites(&self) -> &[MarkSite] {
        &self.sites
    }

    /// The public text's codeword, one symbol per markable site.
    pub fn public_symbols(&self) -> Vec<bool> {
        self.sites.iter().map(|s| s.code.public_symbol()).collect()
    }

    /// The licensee's symbols, one per markable site.
    pub fn symbols(&self, licensee: u64) -> Vec<bool> {
        self.sites.iter().map(|s| s.code.symbol(licensee)).collect()
    }

    /// The licensee's copy. Deterministic per (secret version, licensee, post).
    pub fn render(&self, licensee: u64) -> String {
        self.render_with(|i| {
            let c = &self.sites[i].code;
            c.symbol(licensee) != c.public_symbol()
        })
    }

    /// Renders arbitrary symbols (one per markable site; a missing one takes the public
    /// symbol). [`PreparedPost::public_symbols`] gives the public text back exactly.
    pub fn render_symbols(&self, symbols: &[bool]) -> String {
        self.render_with(|i| {
            let p = self.sites[i].code.public_symbol();
            symbols.get(i).copied().unwrap_or(p) != p
        })
    }

    /// Renders with the alternate form at the sites `i` where `alternate(i)` is true.
    pub fn render_forms(&self, alternate: impl Fn(usize) -> bool) -> String {
        self.render_with(alternate)
    }

    fn render_with(&self, symbol: impl Fn(usize) -> bool) -> String {
        let mut edits: Vec<(Range<usize>, &str)> = Vec::new();
        for (i, s) in self.sites.iter().enumerate() {
            if symbol(i) {
                for (r, t) in s.spans.iter().zip(&s.alternate_text) {
                    edits.push((r.clone(), t.as_str()));
                }
            }
        }
        edits.sort_by_key(|e| (e.0.start, e.0.end));
        let mut out = String::with_capacity(self.text.len() + 8 * edits.len());
        let mut at = 0;
        for (r, t) in edits {
            out.push_str(&self.text[at..r.start]);
            out.push_str(t);
            at = r.end;
        }
        out.push_str(&self.text[at..]);
        out
    }

    /// Reads a leaked copy of this post: the form and symbol at each markable site.
    ///
    /// A site is unreadable when the leaked text has a different number of sites of that
    /// channel than the public text (the text was edited), or shows a form that is neither
    /// the public nor the alternate one (e.g. a mixed quote pair).
    pub fn read(&self, leaked_text: &str) -> PostReading {
        let found = detect_sites(leaked_text);
        let mut by_channel: [Vec<&DetectedSite>; Channel::COUNT] = Default::default();
        for d in &found {
            by_channel[d.channel.index()].push(d);
        }
        let observations = self
            .sites
            .iter()
            .map(|s| {
                let list = &by_channel[s.channel.index()];
                if list.len() as u32 != self.channel_site_counts[s.channel.index()] {
                    return Observation { form: None, symbol: None, public_form: false };
                }
                let f = list[s.ordinal as usize].form;
                let p = s.code.public_symbol();
                let symbol = if f == s.public_form {
                    Some(p)
                } else if f == s.alternate_form {
                    Some(!p)
                } else {
                    None
                };
                Observation { form: Some(f), symbol, public_form: f == s.public_form }
            })
            .collect();
        PostReading { post_id: self.post_id, observations }
    }
}

/// What a leaked text shows at one markable site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The form seen, if the site could be located.
    pub form: Option<Form>,
    /// The symbol, if readable.
    pub symbol: Option<bool>,
    /// Whether the site shows the public text's form.
    pub public_form: bool,
}

/// The observations of one leaked post, one per markable site of its [`PreparedPost`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostReading {
    /// The post.
    pub post_id: u64,
    /// One per markable site, in the order of [`PreparedPost::sites`].
    pub observations: Vec<Observation>,
}

/// Convenience: a licensee's copy of a post (prepares the post each call; for many
/// licensees, prepare once with [`PreparedPost::new`] and call [`PreparedPost::render`]).
pub fn render(secret: &Secret, licensee_id: u64, post_id: u64, public_text: &str) -> String {
    PreparedPost::new(secret, post_id, public_text).render(licensee_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    #[test]
    fn sip13_matches_siphasher() {
        for (k0, k1, m) in [(0u64, 0u64, 0u64), (1, 2, 3), (u64::MAX, 7, 12345678901234)] {
            let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
            h.write(&m.to_le_bytes());
            assert_eq!(h.finish(), sip13_u64(k0, k1, m));
        }
    }
}
