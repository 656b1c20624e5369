//! The marking secret and the code parameters recorded with it.

use crate::channel::ChannelSet;

/// Default maximum coalition size.
pub const DEFAULT_MAX_COALITION: u32 = 8;

/// The marking key with everything that must stay fixed for copies made under it to be
/// traceable: a version number, the maximum coalition size `c` the bias distribution is
/// tuned for, the bias cutoff and the enabled channels.
///
/// Keep every version you ever rendered with: tracing a leak needs the version that made
/// it. The key is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    version: u32,
    key: [u8; 32],
    max_coalition: u32,
    cutoff_ppm: u32,
    channels: ChannelSet,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("version", &self.version)
            .field("key", &"<redacted>")
            .field("max_coalition", &self.max_coalition)
            .field("cutoff", &self.cutoff())
            .field("channels", &self.channels)
            .finish()
    }
}

impl Secret {
    /// A secret with the default coalition size 8, the default cutoff for it and the
    /// default (typographic) channels. `key` must be 32 uniformly random bytes.
    pub fn new(version: u32, key: [u8; 32]) -> Self {
        Secret {
            version,
            key,
            max_coalition: DEFAULT_MAX_COALITION,
            cutoff_ppm: default_cutoff_ppm(DEFAULT_MAX_COALITION),
            channels: ChannelSet::DEFAULT,
        }
    }

    /// Derives the 32-byte key from arbitrary key material (e.g. a passphrase or a key
    /// from a KMS) with BLAKE3's key derivation.
    pub fn derive(version: u32, key_material: &[u8]) -> Self {
        Self::new(version, blake3::derive_key("datapact-mark 2026 secret key", key_material))
    }

    /// Sets the maximum coalition size `c` (at least 1) and resets the cutoff to its
    /// default for `c`.
    pub fn with_max_coalition(mut self, c: u32) -> Self {
        self.max_coalition = c.max(1);
        self.cutoff_ppm = default_cutoff_ppm(self.max_coalition);
        self
    }

    /// Sets the bias cutoff `t` (biases live in `[t, 1 - t]`), in parts per million,
    /// clamped to `1..=499_999`.
    pub fn with_cutoff_ppm(mut self, ppm: u32) -> Self {
        self.cutoff_ppm = ppm.clamp(1, 499_999);
        self
    }

    /// Sets the enabled channels.
    pub fn with_channels(mut self, channels: ChannelSet) -> Self {
        self.channels = channels;
        self
    }

    /// The version number.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The maximum coalition size the code is tuned for.
    pub fn max_coalition(&self) -> u32 {
        self.max_coalition
    }

    /// The bias cutoff `t`.
    pub fn cutoff(&self) -> f64 {
        self.cutoff_ppm as f64 / 1e6
    }

    /// The enabled channels.
    pub fn channels(&self) -> ChannelSet {
        self.channels
    }

    /// The raw key, for persisting the secret in a key store. Treat as confidential:
    /// anyone holding it can compute every licensee's symbols.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The seed of the canary post `post_id` made for `licensee` under this secret: canaries are
    /// generated from it, so a tracer holding the secret regenerates every canary's text from
    /// the ledger's record of which canary ids went to whom. Unpredictable without the key.
    pub fn canary_seed(&self, licensee: u64, post_id: u64) -> u64 {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(b"datapact-mark canary v1\0");
        h.update(&self.version.to_le_bytes());
        h.update(&licensee.to_le_bytes());
        h.update(&post_id.to_le_bytes());
        let out = h.finalize();
        u64::from_le_bytes(out.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    /// The bias cutoff in parts per million (what is recorded with the version).
    pub fn cutoff_ppm(&self) -> u32 {
        self.cutoff_ppm
    }
}

/// Tardos' cutoff `t = 1/(300 c)`, in ppm.
pub fn default_cutoff_ppm(c: u32) -> u32 {
    ((1e6 / (300.0 * c.max(1) as f64)).round() as u32).max(1)
}
