"""Who receives: the subscriber list (a CSV, or the subscriber store), sign-up and its confirmation."""
