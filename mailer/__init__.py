"""mailer: a newsletter email pipeline (YAML → MJML → inlined HTML + text → delivery)."""
