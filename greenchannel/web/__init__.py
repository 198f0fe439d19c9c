"""The web delivery: the Flask app, the JSON API, the pages, auth, observability."""
