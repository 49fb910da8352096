//! [`MemberKey`]: a Mailchimp member identity as a set or map key. Mailchimp's member ids and
//! contact ids are 32 lower-case hex digits (the subscriber hash is the MD5 of the lower-cased
//! address), kept as a number, so the sets of a million-member read hold no million strings.

/// A member id or contact id as a key: a number when it is 32 lower-case hex digits, else text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberKey(Repr);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    Hex(u128),
    Text(Box<str>),
}

impl MemberKey {
    /// The key of `id`.
    #[must_use]
    pub fn of(id: &str) -> Self {
        // Upper-case hex would parse to the same number as lower-case: only lower-case is
        // taken as a number, so distinct strings stay distinct keys.
        let number = match id.as_bytes().split_at_checked(16) {
            Some((high, low)) if low.len() == 16 => hex_u64(high)
                .zip(hex_u64(low))
                .map(|(high, low)| u128::from(high) << 64 | u128::from(low)),
            _ => None,
        };
        match number {
            Some(n) => Self(Repr::Hex(n)),
            None => Self(Repr::Text(id.into())),
        }
    }
}

/// Each byte's value as a lower-case hex digit, or `0xff`.
const HEX_DIGIT: [u8; 256] = {
    let mut table = [0xff_u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Sixteen lower-case hex digits as a number (a read makes three keys per member).
fn hex_u64(digits: &[u8]) -> Option<u64> {
    let mut n = 0_u64;
    let mut bad = 0_u8;
    for &b in digits {
        let digit = HEX_DIGIT[usize::from(b)];
        bad |= digit;
        n = n << 4 | u64::from(digit & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_are_distinct_keys() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(MemberKey::of(id), MemberKey::of(id));
        assert_ne!(MemberKey::of(id), MemberKey::of(&id.to_uppercase()));
        assert_ne!(MemberKey::of(id), MemberKey::of(&id[1..]));
        assert_ne!(
            MemberKey::of(id),
            MemberKey::of("0123456789abcdef0123456789abcdee")
        );
        assert_eq!(MemberKey::of("not hex"), MemberKey::of("not hex"));
        assert_eq!(
            MemberKey::of(id),
            MemberKey(Repr::Hex(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef))
        );
        assert_eq!(
            MemberKey::of(&"f".repeat(32)),
            MemberKey(Repr::Hex(u128::MAX))
        );
        for bad in ["g", "A", "F", " ", "/", ":", "`"] {
            let text = format!("{bad}{}", &id[1..]);
            assert_eq!(
                MemberKey::of(&text),
                MemberKey(Repr::Text(text.clone().into()))
            );
            let text = format!("{}{bad}", &id[..31]);
            assert_eq!(
                MemberKey::of(&text),
                MemberKey(Repr::Text(text.clone().into()))
            );
        }
        let multibyte = format!("é{}", &id[2..]);
        assert_eq!(
            MemberKey::of(&multibyte),
            MemberKey(Repr::Text(multibyte.clone().into()))
        );
    }
}
