//! The search: which bigrams a text holds, the Aho-Corasick automaton over every form of
//! every secret, and how a found range is widened and merged.

use super::*;

/// Which pairs of adjacent bytes a text holds (hashed into 4096 bits: a pair can be
/// reported that is not there, never the other way): a needle one of whose pairs is
/// missing cannot occur, and is not searched. Most of a call's ~100 needles are rejected
/// so in a few lookups each; memmem needs a searcher made per needle.
pub(super) struct Bigrams([u64; 64]);

impl Bigrams {
    pub(super) fn slot(a: u8, b: u8) -> usize {
        (usize::from(a) << 4 ^ usize::from(b)) & 4095
    }

    pub(super) fn of(hay: &[u8]) -> Bigrams {
        let mut g = Bigrams([0; 64]);
        for w in hay.windows(2) {
            let i = Self::slot(w[0], w[1]);
            g.0[i / 64] |= 1 << (i % 64);
        }
        g
    }

    /// False when `needle` certainly does not occur (some of its pairs, spread over it,
    /// are checked).
    pub(super) fn may_hold(&self, needle: &[u8]) -> bool {
        if needle.len() < 2 {
            return true;
        }
        let last = needle.len() - 2;
        (0..8).map(|k| k * last / 7).all(|at| {
            let i = Self::slot(needle[at], needle[at + 1]);
            self.0[i / 64] & (1 << (i % 64)) != 0
        })
    }
}

/// Every occurrence of `needle` in `hay`, added to `ranges`: leftmost non-overlapping ones
/// for a long needle (they leave no whole occurrence behind); for a short one every
/// occurrence (overlapping too, at most len-1 bytes apart) that stands alone.
pub(super) fn find_needle(hay: &[u8], needle: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if needle.is_empty() || needle.len() > hay.len() {
        return;
    }
    let first_of_this = ranges.len();
    if needle.len() >= WHOLE_WORD_BELOW {
        ranges.extend(memchr::memmem::find_iter(hay, needle).map(|i| (i, i + needle.len())));
        return;
    }
    let finder = memchr::memmem::Finder::new(needle);
    let mut at = 0;
    while let Some(i) = finder.find(&hay[at..]) {
        let (s, e) = (at + i, at + i + needle.len());
        if stands_alone(hay, s, e) {
            // Runs of touching occurrences become one range (bounded memory).
            let len = ranges.len();
            match ranges.last_mut() {
                Some(last) if len > first_of_this && s <= last.1 => last.1 = e,
                _ => ranges.push((s, e)),
            }
        }
        at = s + 1;
    }
}

/// Whether `hay[s..e]` (a short secret's occurrence) is not glued to a word on a side where
/// it starts or ends with a word byte.
pub(super) fn stands_alone(hay: &[u8], s: usize, e: usize) -> bool {
    let before = s > 0 && is_word_byte(hay[s]) && is_word_byte(hay[s - 1]);
    let after = e < hay.len() && is_word_byte(hay[e - 1]) && is_word_byte(hay[e]);
    !before && !after
}

/// Adds `(s, e)` to ranges found in order of their ends, merging it with the ones it
/// overlaps (or touches, for `touching`).
pub(super) fn add_range(out: &mut Vec<(usize, usize)>, mut s: usize, e: usize, touching: bool) {
    while let Some(&(ls, le)) = out.last() {
        if s < le || (touching && s == le) {
            s = s.min(ls);
            out.pop();
        } else {
            break;
        }
    }
    out.push((s, e));
}

/// One Aho-Corasick automaton (the `aho-corasick` crate, by memchr's author) of every needle
/// of a [`Secrets`], stepped byte by byte so that each position costs O(1) however many
/// needles end there: per state it keeps the longest needle of [`WHOLE_WORD_BELOW`] bytes
/// or more that ends there (which covers every shorter one ending at the same byte) and the
/// lengths (1..7) of the short ones, checked one by one against the "stands alone" rule.
/// A text is thus scanned once, whatever the number of needles (each secret has some 20
/// forms); memmem per needle would be O(text × needles).
pub(super) struct Matcher {
    pub(super) nfa: aho_corasick::nfa::contiguous::NFA,
}

impl Matcher {
    pub(super) fn new<'a>(needles: impl Iterator<Item = &'a [u8]>) -> Option<Matcher> {
        let needles: Vec<&[u8]> = needles.filter(|n| !n.is_empty()).collect();
        let nfa = aho_corasick::nfa::contiguous::Builder::new().match_kind(aho_corasick::MatchKind::Standard).build(&needles).ok()?;
        Some(Matcher { nfa })
    }

    /// Adds the ranges of `hay` to mask. Past the call's `deadline` (checked every
    /// [`DEADLINE_STRIDE`] bytes) the rest of the text is masked whole: masking never
    /// runs on past the call's end, and never lets the unchecked part through.
    pub(super) fn scan(&self, hay: &[u8], out: &mut Vec<(usize, usize)>, deadline: Option<std::time::Instant>) {
        use aho_corasick::Anchored;
        use aho_corasick::automaton::Automaton;
        let nfa = &self.nfa;
        let Ok(mut sid) = nfa.start_state(Anchored::No) else {
            out.push((0, hay.len())); // cannot happen (unanchored search is supported): fail closed
            return;
        };
        // Per state: 0 = not yet looked at, else 1 | short lengths as bits 1..7 | longest << 8.
        let mut info: Vec<u64> = Vec::new();
        for (n, chunk) in hay.chunks(DEADLINE_STRIDE).enumerate() {
            let base = n * DEADLINE_STRIDE;
            if n > 0 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                add_range(out, base, hay.len(), true);
                return;
            }
            for (j, &b) in chunk.iter().enumerate() {
                sid = nfa.next_state(Anchored::No, sid, b);
                if !(nfa.is_special(sid) && nfa.is_match(sid)) {
                    continue;
                }
                let idx = sid.as_usize();
                if idx >= info.len() {
                    info.resize(idx + 1, 0);
                }
                if info[idx] == 0 {
                    let mut v = 1u64;
                    for k in 0..nfa.match_len(sid) {
                        let len = nfa.pattern_len(nfa.match_pattern(sid, k));
                        if len >= WHOLE_WORD_BELOW {
                            v = v.max(((len as u64) << 8) | (v & 0xff));
                        } else {
                            v |= 1 << len;
                        }
                    }
                    info[idx] = v;
                }
                let v = info[idx];
                let e = base + j + 1;
                let mut short = (v >> 1) & 0x7f;
                // Shortest first: their starts go down, so ends stay in order for add_range.
                while short != 0 {
                    let len = short.trailing_zeros() as usize + 1;
                    short &= short - 1;
                    if stands_alone(hay, e - len, e) {
                        add_range(out, e - len, e, true);
                    }
                }
                let long = (v >> 8) as usize;
                if long > 0 {
                    add_range(out, e - long, e, false);
                }
            }
        }
    }
}
