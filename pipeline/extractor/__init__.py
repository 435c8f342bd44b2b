"""newsmon."""
