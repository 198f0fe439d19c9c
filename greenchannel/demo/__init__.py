"""The demo region, its generated roads and the scripted scenarios."""
