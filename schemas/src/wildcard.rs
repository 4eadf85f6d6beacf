//! Wildcard patterns, one meaning everywhere a user writes `matches`: detection rules and
//! suppression rules alike (GuardDuty's filter `Matches`).

/// `*` any run of characters, `?` one character; everything else literal.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with one backtrack point, linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_is_any_run_and_question_mark_one_character() {
        assert!(wildcard_match("shop*", "shop-prod"));
        assert!(wildcard_match("*prod", "shop-prod"));
        assert!(wildcard_match("s?op-*d", "shop-prod"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(
            !wildcard_match("shop", "shop-prod"),
            "the whole text, not a part of it"
        );
        assert!(wildcard_match("kube-*.example", "kube-a.example"));
        assert!(
            !wildcard_match("kube-*.example", "kube-a-example"),
            "a dot is a dot"
        );
    }
}
