"""Authoring chores: next week's file (`mailer new`) and cards filled from their pages (`mailer cards`)."""
