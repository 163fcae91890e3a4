"""The web dashboard for shop members (server-rendered pages under the site root)."""
