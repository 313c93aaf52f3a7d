"""Accounts and security: users, passwords, API tokens, sessions, roles, audit log."""
