"""opt_out skill: rule-based do-not-call detection for outbound calls."""
