"""Stand-in for miles.utils."""
