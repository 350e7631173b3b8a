"""The review queue: what needs a person, and what people decide (docs/api.md, "Review queue")."""
