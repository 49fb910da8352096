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
        let number = (id.len() == 32)
            .then(|| {
                id.bytes().try_fold(0_u128, |n, b| {
                    let digit = match b {
                        b'0'..=b'9' => b - b'0',
                        b'a'..=b'f' => b - b'a' + 10,
                        _ => return None,
                    };
                    Some(n << 4 | u128::from(digit))
                })
            })
            .flatten();
        match number {
            Some(n) => Self(Repr::Hex(n)),
            None => Self(Repr::Text(id.into())),
        }
    }
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
    }
}
