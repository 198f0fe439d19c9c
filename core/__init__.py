"""The ground every package stands on: the database base and types, one error family, one
vocabulary, the settings read from the environment. It imports nothing of ours."""
