//! Channels (kinds of marking sites) and the concrete forms a site can show.

/// A kind of site: a place in a text with two renderings a reader sees as the same.
///
/// Each channel is reported separately by detection and by the accusation, so that a
/// channel that an attacker normalised away can be recognised and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum Channel {
    /// An apostrophe between two letters: `'` (U+0027) vs `’` (U+2019).
    Apostrophe = 0,
    /// A pair of double quotes: `"…"` vs `“…”`.
    DoubleQuotes = 1,
    /// An ellipsis: `...` vs `…` (U+2026).
    Ellipsis = 2,
    /// A dash between spaces: ` - ` vs ` – ` (en dash, U+2013).
    SpacedDash = 3,
    /// The space before `; : ! ? »` or after `«`: space vs no-break space (U+00A0) vs
    /// narrow no-break space (U+202F).
    FrenchSpacing = 4,
    /// An accented letter: precomposed (`é`) vs decomposed (`e` + U+0301).
    Accent = 5,
    /// Off by default. A space between two letters, with or without a following
    /// zero-width space (U+200B).
    ZeroWidth = 6,
    /// Off by default. A lowercase Latin letter `a c e o p x y` between letters vs its
    /// Cyrillic look-alike.
    Homoglyph = 7,
}

impl Channel {
    /// Every channel, in numbering order.
    pub const ALL: [Channel; 8] = [
        Channel::Apostrophe,
        Channel::DoubleQuotes,
        Channel::Ellipsis,
        Channel::SpacedDash,
        Channel::FrenchSpacing,
        Channel::Accent,
        Channel::ZeroWidth,
        Channel::Homoglyph,
    ];

    /// Number of channels.
    pub const COUNT: usize = 8;

    /// A short stable name (used in reports).
    pub fn name(self) -> &'static str {
        match self {
            Channel::Apostrophe => "apostrophe",
            Channel::DoubleQuotes => "double-quotes",
            Channel::Ellipsis => "ellipsis",
            Channel::SpacedDash => "spaced-dash",
            Channel::FrenchSpacing => "french-spacing",
            Channel::Accent => "accent",
            Channel::ZeroWidth => "zero-width",
            Channel::Homoglyph => "homoglyph",
        }
    }

    /// Index in `0..Channel::COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelSet(u16);

impl ChannelSet {
    /// No channel.
    pub const EMPTY: ChannelSet = ChannelSet(0);
    /// Every channel, including zero-width and homoglyph.
    pub const ALL: ChannelSet = ChannelSet(0xff);
    /// The typographic channels: everything but zero-width and homoglyph.
    pub const DEFAULT: ChannelSet = ChannelSet(0x3f);

    /// This set with `channel` added.
    pub const fn with(self, channel: Channel) -> ChannelSet {
        ChannelSet(self.0 | (1 << channel as u16))
    }

    /// This set with `channel` removed.
    pub const fn without(self, channel: Channel) -> ChannelSet {
        ChannelSet(self.0 & !(1 << channel as u16))
    }

    /// Whether `channel` is in the set.
    pub const fn contains(self, channel: Channel) -> bool {
        self.0 & (1 << channel as u16) != 0
    }

    /// The channels in the set.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// Raw bits (bit i = channel i), for recording with a secret.
    pub const fn bits(self) -> u16 {
        self.0
    }
}

impl Default for ChannelSet {
    fn default() -> Self {
        ChannelSet::DEFAULT
    }
}

/// The concrete rendering a site shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Form {
    /// `'`
    StraightApostrophe,
    /// `’`
    CurlyApostrophe,
    /// `"…"`
    StraightQuotes,
    /// `“…”`
    CurlyQuotes,
    /// A quote pair mixing forms: unreadable, never rendered.
    MixedQuotes,
    /// `...`
    ThreeDots,
    /// `…`
    EllipsisChar,
    /// `-`
    Hyphen,
    /// `–`
    EnDash,
    /// U+0020
    Space,
    /// U+00A0
    NoBreakSpace,
    /// U+202F
    NarrowNoBreakSpace,
    /// `é`
    Precomposed,
    /// `e` + U+0301
    Decomposed,
    /// nothing
    NoZeroWidth,
    /// U+200B
    ZeroWidthSpace,
    /// a Latin letter
    Latin,
    /// its Cyrillic look-alike
    Cyrillic,
}

impl Form {
    /// The other rendering used when a licensee's symbol at a site is 1 and the public
    /// text shows `self`; `None` if the site cannot be marked.
    pub fn alternate(self) -> Option<Form> {
        use Form::*;
        Some(match self {
            StraightApostrophe => CurlyApostrophe,
            CurlyApostrophe => StraightApostrophe,
            StraightQuotes => CurlyQuotes,
            CurlyQuotes => StraightQuotes,
            MixedQuotes => return None,
            ThreeDots => EllipsisChar,
            EllipsisChar => ThreeDots,
            Hyphen => EnDash,
            EnDash => Hyphen,
            Space => NoBreakSpace,
            NoBreakSpace => Space,
            NarrowNoBreakSpace => NoBreakSpace,
            Precomposed => Decomposed,
            Decomposed => Precomposed,
            NoZeroWidth => ZeroWidthSpace,
            ZeroWidthSpace => NoZeroWidth,
            Latin => Cyrillic,
            Cyrillic => Latin,
        })
    }
}
