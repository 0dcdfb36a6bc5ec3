//! Case-insensitive glob matching as OpenClaw applies it to agent ids and tool names
//! (`*` matches any run of characters, `?` one character).

/// Returns true when `pattern` matches `text`, ignoring ASCII case.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let text: Vec<char> = text.to_ascii_lowercase().chars().collect();
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Returns true when the pattern contains glob metacharacters.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_case_insensitively() {
        assert!(matches("Lead", "lead"));
        assert!(!matches("lead", "leader"));
    }

    #[test]
    fn stars_and_question_marks_match_runs_and_single_characters() {
        assert!(matches("*", "anything"));
        assert!(matches("res*", "research"));
        assert!(matches("*-bot", "support-bot"));
        assert!(matches("w?iter", "writer"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("sessions_*", "sessions_send"));
    }

    #[test]
    fn pattern_detection_looks_for_metacharacters() {
        assert!(is_pattern("res*"));
        assert!(!is_pattern("research"));
    }
}
