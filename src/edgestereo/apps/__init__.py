"""Command-line applications; argument parsing stops here."""
