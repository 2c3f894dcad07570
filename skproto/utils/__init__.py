"""Internal utilities shared by skproto's estimators."""
